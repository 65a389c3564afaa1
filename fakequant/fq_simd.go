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

// auxBwdFast runs the vector backward on a prefix of the stride-1 run (float32 only): it writes
// gxs and returns the LSQ sums over that prefix and the number of elements done (0 when the vector
// path does not apply); auxBwdRun's Go loop does the rest.
//
// gxs is bit-identical to the Go loop's. The sums are not: they add the same float64 terms
// (float64(g*a) with the float32 product, float64(g)) but as 8 per-lane float64 partial sums folded
// at the end, a different order from the Go loop's two sequential accumulators, so they differ
// from it by float64 rounding only (relative ~1e-16 per term, tested at 1e-12 of the sum of |terms|).
func auxBwdFast[F quant.Float](as, gys, gxs []F, plain bool) (in, lo, hi float64, done int) {
	if !useAVX2 || unsafe.Sizeof(as[0]) != 4 || len(as) < fqSIMDMin {
		return 0, 0, 0, 0
	}
	n := len(as)
	gys, gxs = gys[:n], gxs[:n]
	var sums [3][8]float64
	done = auxBwdAVX2((*float32)(unsafe.Pointer(&as[0])), (*float32)(unsafe.Pointer(&gys[0])),
		(*float32)(unsafe.Pointer(&gxs[0])), n, plain, &sums)
	for l := range 8 {
		in += sums[0][l]
		lo += sums[1][l]
		hi += sums[2][l]
	}
	return in, lo, hi, done
}

// minMaxFast runs the vector min/max on a prefix of the stride-1 run xs (float32 only) and returns
// its min and max values and the number of elements done (0 when the vector path does not apply).
// The sign of a zero extreme is not settled here (see pairFirstZero).
func minMaxFast[F quant.Float](xs []F) (mn, mx F, done int) {
	if !useAVX2 || unsafe.Sizeof(xs[0]) != 4 || len(xs) < fqSIMDMin {
		return 0, 0, 0
	}
	var mm [2][8]float32
	x0 := float32(xs[0])
	for l := range 8 {
		mm[0][l], mm[1][l] = x0, x0
	}
	done = minMaxAVX2((*float32)(unsafe.Pointer(&xs[0])), len(xs), &mm)
	a, b := mm[0][0], mm[1][0]
	for l := 1; l < 8; l++ {
		if mm[0][l] < a {
			a = mm[0][l]
		}
		if mm[1][l] > b {
			b = mm[1][l]
		}
	}
	return F(a), F(b), done
}

// pairFirstZero returns the zero minMaxRun's two-accumulator stride-1 loop keeps as an extreme
// whose value is zero: each accumulator keeps the first zero of its parity class (replacement is
// on a strict <, >), and the even one wins ties, so it is the first zero at an even index, else
// the first at an odd index. Only called when the extreme is zero, so some element is zero.
func pairFirstZero[F quant.Float](xs []F) F {
	for i := 0; i < len(xs); i += 2 {
		if xs[i] == 0 {
			return xs[i]
		}
	}
	for i := 1; i < len(xs); i += 2 {
		if xs[i] == 0 {
			return xs[i]
		}
	}
	return 0
}
