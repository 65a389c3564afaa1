package fakequant

import (
	"unsafe"

	"github.com/qatgo/qatgo/quant"
)

// fqSIMDMin is the shortest run handed to the vector kernels.
const fqSIMDMin = 8

// fqConsts broadcasts the clip bounds and clipped outputs of one (s, lo, hi) for the vector kernels.
func fqConsts(s, lo, hi float32) *[4][8]float32 {
	vlo, vhi := clipBounds(lo, hi)
	ylo, yhi := lo*s, hi*s
	k := new([4][8]float32)
	for l := range 8 {
		k[0][l], k[1][l], k[2][l], k[3][l] = vlo, vhi, ylo, yhi
	}
	return k
}

// fqRunFast runs the vector kernel on a prefix of the stride-1 run xs (float32 only) and returns
// the number of elements it wrote; the caller's Go loop does the rest (the tail, and the block
// holding the first non-finite input, so the reported index and the outputs are the Go loop's).
func fqRunFast[F quant.Float](xs, ys, as []F, s, lo, hi F) int {
	if !useAVX2 || unsafe.Sizeof(s) != 4 || len(xs) < fqSIMDMin {
		return 0
	}
	n := len(xs)
	ys, as = ys[:n], as[:n]
	k := fqConsts(float32(s), float32(lo), float32(hi))
	return fqRunAVX2((*float32)(unsafe.Pointer(&xs[0])), (*float32)(unsafe.Pointer(&ys[0])),
		(*float32)(unsafe.Pointer(&as[0])), n, float32(s), k)
}

// fqRunMinMaxFast is fqRunFast that also returns the run's min and max over the elements it
// wrote, with fqRunMinMax's sequential rule (start from xs[0], replace only on a strict <, >):
// the per-lane extremes are folded, and a zero extreme takes the sign of the first zero in xs,
// which is what the sequential scan keeps.
func fqRunMinMaxFast[F quant.Float](xs, ys, as []F, s, lo, hi F) (mn, mx F, done int) {
	if !useAVX2 || unsafe.Sizeof(s) != 4 || len(xs) < fqSIMDMin {
		return 0, 0, 0
	}
	n := len(xs)
	ys, as = ys[:n], as[:n]
	k := fqConsts(float32(s), float32(lo), float32(hi))
	var mm [2][8]float32
	x0 := float32(xs[0])
	for l := range 8 {
		mm[0][l], mm[1][l] = x0, x0
	}
	done = fqRunMinMaxAVX2((*float32)(unsafe.Pointer(&xs[0])), (*float32)(unsafe.Pointer(&ys[0])),
		(*float32)(unsafe.Pointer(&as[0])), n, float32(s), k, &mm)
	a, b := mm[0][0], mm[1][0]
	for l := 1; l < 8; l++ {
		if mm[0][l] < a {
			a = mm[0][l]
		}
		if mm[1][l] > b {
			b = mm[1][l]
		}
	}
	mn, mx = F(a), F(b)
	if a == 0 || b == 0 {
		for _, xi := range xs[:max(done, 1)] {
			if xi == 0 {
				if a == 0 {
					mn = xi
				}
				if b == 0 {
					mx = xi
				}
				break
			}
		}
	}
	return mn, mx, done
}

// fqRowsFast runs the vector kernel for fqRows (float32, len(s) >= 8). With len(s) a multiple of 8
// it does the whole of x (len(x) a multiple of len(s)); otherwise x is one row and it does the
// row's first len(s)&^7 columns. It returns the number of leading elements of x it wrote.
func fqRowsFast[F quant.Float](x, y, aux, s, lo, hi []F) int {
	c := len(s)
	if !useAVX2 || unsafe.Sizeof(s[0]) != 4 || c < fqSIMDMin || len(x) < c {
		return 0
	}
	n, cc := len(x)-len(x)%c, c
	if c%8 != 0 {
		n, cc = c&^7, c&^7
	}
	y, aux, lo, hi = y[:n], aux[:n], lo[:c], hi[:c]
	p := func(v []F) *float32 { return (*float32)(unsafe.Pointer(&v[0])) }
	return fqRowsAVX2(p(x), p(y), p(aux), p(s), p(lo), p(hi), n, cc)
}
