package kernels

import (
	"unsafe"

	"github.com/qatgo/qatgo/quant"
)

// Winograd F(2x2, 3x3) for the portable FusedConv (3x3 kernels, stride 1), exact in integers.
//
// Every 2x2 block of conv outputs (a tile) is computed from the 4x4 input patch d under it as
//
//	Y = A^T [ (G g G^T) (.) (B^T d B) ] A        (per output channel, summed over input channels)
//
// with the standard matrices of Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks" (2016):
//
//	B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//	A^T = [1 1 1 0; 0 1 -1 -1]
//
// The weights are transformed with G' = 2G (integer entries), so the tile comes out as 4Y, an
// exact multiple of 4: dividing by 4 with a shift is exact, and the results are bit-identical
// to the direct convolution (TestFusedConv compares with the naive one). A tile needs 16
// multiplications per (input, output) channel pair instead of 36.
//
// Bounds: |B^T d B| <= 4*128, |G' g G'^T| <= 9*127, so one elementwise product is below 2^20 in
// magnitude, a sum over InC channels below InC*2^20, and after A^T . A (at most 9 terms)
// 4Y is below 9*InC*2^20 (< 2^31 for InC <= winoMaxInC). The multiplications run on two output
// channels at once as in the portable GEMM (portable.go): the transformed weights of channels
// 2q and 2q+1 are one int64 W = w0 + w1<<32, the products and every later sum and difference
// are linear, so each int64 holds two exact int32 lanes until it is split at the end.

// winoMaxInC bounds the input channels of the Winograd path (see the bounds above).
const winoMaxInC = 256

// winoWeights holds the transformed weights: for each group g of 4 channel pairs (8 output
// channels) and each of the 16 positions p of the 4x4 transformed tile, InC x 4 int64 pairs, at
// w[((g*16+p)*InC+c)*4+t] (pair 4g+t, zero beyond OutC).
type winoWeights struct {
	w    []int64
	ngrp int
}

// winoUsable reports whether the Winograd path computes shape s exactly.
func winoUsable(s ConvShape) bool {
	return s.KH == 3 && s.KW == 3 && s.StrideH == 1 && s.StrideW == 1 && s.InC <= winoMaxInC
}

// winograd returns the transformed weights, building them on first use (only the portable path
// needs them). Safe for concurrent use.
func (f *FusedConv) winograd() *winoWeights {
	if ww := f.wino.Load(); ww != nil {
		return ww
	}
	s := f.s
	c, n := s.InC, s.OutC
	ngrp := (n + 7) / 8
	ww := &winoWeights{w: make([]int64, 16*ngrp*c*4), ngrp: ngrp}
	var g [3][3]int64
	var u [4][3]int64
	for j := 0; j < n; j++ {
		q := j / 2
		grp, t := q/4, q%4
		lane := uint(32 * (j % 2))
		for ch := 0; ch < c; ch++ {
			for y := 0; y < 3; y++ {
				for x := 0; x < 3; x++ {
					g[y][x] = int64(f.w.at(j, (y*3+x)*c+ch))
				}
			}
			// u = G' g (4x3), then v = u G'^T (4x4).
			for x := 0; x < 3; x++ {
				u[0][x] = 2 * g[0][x]
				u[1][x] = g[0][x] + g[1][x] + g[2][x]
				u[2][x] = g[0][x] - g[1][x] + g[2][x]
				u[3][x] = 2 * g[2][x]
			}
			for y := 0; y < 4; y++ {
				v := [4]int64{2 * u[y][0], u[y][0] + u[y][1] + u[y][2], u[y][0] - u[y][1] + u[y][2], 2 * u[y][2]}
				for x, val := range v {
					p := y*4 + x
					ww.w[((grp*16+p)*c+ch)*4+t] += val << lane
				}
			}
		}
	}
	if f.wino.CompareAndSwap(nil, ww) {
		return ww
	}
	return f.wino.Load()
}

// winoPadded writes one image into pad, a (2*th+2) x (2*tw+2) x InC image whose conv input
// starts at row PadTop, column PadLeft; every other byte holds inZero (the rows and columns past
// the conv's own padding only feed outputs that are dropped). With shifted, img holds the
// values with their sign bit flipped.
func (f *FusedConv) winoPadded(pad, img []int8, th, tw int, shifted bool) {
	s := f.s
	c := s.InC
	pw := 2*tw + 2
	zb := uint64(uint8(f.inZero)) * 0x0101010101010101
	pb := unsafe.Slice((*byte)(unsafe.Pointer(&pad[0])), len(pad))
	fillBytes(pb, zb)
	// With a pool, the last conv row and column may have no pooled output and no tile: the
	// pixels only they read are not copied.
	rows := min(s.InH, 2*th+2-s.PadTop)
	cols := min(s.InW, pw-s.PadLeft)
	rowLen := s.InW * c
	for y := 0; y < rows; y++ {
		d := pad[((s.PadTop+y)*pw+s.PadLeft)*c:][:cols*c]
		row := img[y*rowLen:][:cols*c]
		if !shifted {
			copy(d, row)
			continue
		}
		for i, v := range row {
			d[i] = v ^ -128
		}
	}
}

// convPoolWinograd is convPoolPortable for winoUsable shapes: per row of tiles, the
// accumulators of two conv rows (or of one pooled row) from Winograd tiles, then the reference
// epilogue.
func convPoolWinograd(f *FusedConv, dst, src []int8, batch int, shifted bool, sc *FusedScratch) {
	s := f.s
	c, n := s.InC, s.OutC
	oh, ow := s.OutH(), s.OutW()
	th, tw := (oh+1)/2, (ow+1)/2
	if f.pool {
		th, tw = f.oh, f.ow
	}
	ww := f.winograd()
	np4 := 4 * ww.ngrp
	ph, pw := 2*th+2, 2*tw+2
	sc.pad = fcGrow8(sc.pad, ph*pw*c)
	pad := sc.pad
	sc.acc = fcGrow32(sc.acc, 4*tw*n)
	acc0, acc1 := sc.acc[:2*tw*n], sc.acc[2*tw*n:4*tw*n]
	sc.wino = fcGrow64(sc.wino, 16*c+20*np4+4*pw*c)
	x, m, yt := sc.wino[:16*c], sc.wino[16*c:16*c+16*np4], sc.wino[16*c+16*np4:16*c+20*np4]
	cols := sc.wino[16*c+20*np4:]
	bias := f.bias
	// Pooled tiles are requantized as they are decoded (the epilogue of requantRows).
	sc.prep = growPrep(sc.prep, n)
	prep := sc.prep
	for j := range prep {
		prep[j] = quant.Multiplier{M0: f.rq.M0[j], Shift: f.rq.Shift[j]}.Prepare()
	}
	zp, lo, hi := int64(f.rq.ZeroPoint), int64(f.rq.Min), int64(f.rq.Max)
	inImg, outImg := s.InH*s.InW*c, f.oh*f.ow*n
	for b := 0; b < batch; b++ {
		f.winoPadded(pad, src[b*inImg:(b+1)*inImg], th, tw, shifted)
		o := dst[b*outImg : (b+1)*outImg]
		for ty := 0; ty < th; ty++ {
			if c > 1 {
				winoColumns(cols, pad[2*ty*pw*c:], pw*c)
			}
			for tx := 0; tx < tw; tx++ {
				if c == 1 {
					winoInput1(x, pad[2*ty*pw+2*tx:], pw)
					winoTile1(yt, x, ww.w, np4)
				} else {
					winoRows(x, cols, pw*c, 2*tx*c, c)
					winoMul(m, x, ww.w, c, ww.ngrp)
					for q := 0; q < (n+1)/2; q++ {
						y := yt[4*q : 4*q+4]
						y[0], y[1], y[2], y[3] = winoOutput(m, q, np4)
					}
				}
				if f.pool {
					winoPoolOut(o[(ty*f.ow+tx)*n:(ty*f.ow+tx+1)*n], yt, bias, prep, zp, lo, hi)
					continue
				}
				for q := 0; q < (n+1)/2; q++ {
					y := yt[4*q : 4*q+4]
					y00, y01, y10, y11 := y[0], y[1], y[2], y[3]
					j := 2 * q
					l00, h00 := split2(y00)
					l01, h01 := split2(y01)
					l10, h10 := split2(y10)
					l11, h11 := split2(y11)
					a0, a1 := acc0[2*tx*n:], acc1[2*tx*n:]
					a0[j], a0[n+j] = l00>>2+bias[j], l01>>2+bias[j]
					a1[j], a1[n+j] = l10>>2+bias[j], l11>>2+bias[j]
					if j+1 < n {
						a0[j+1], a0[n+j+1] = h00>>2+bias[j+1], h01>>2+bias[j+1]
						a1[j+1], a1[n+j+1] = h10>>2+bias[j+1], h11>>2+bias[j+1]
					}
				}
			}
			if f.pool {
				continue
			}
			requantRows(o[2*ty*ow*n:], n, acc0, n, ow, n, &f.rq)
			if 2*ty+1 < oh {
				requantRows(o[(2*ty+1)*ow*n:], n, acc1, n, ow, n, &f.rq)
			}
		}
	}
}

// winoPoolOut stores one pooled output pixel d (n channels) from the tile outputs yt (four
// two-lane values per channel pair, scaled by 4; see winoTile1): per channel the maximum of the
// four conv outputs, divided by 4, plus the bias, then requantized with prep and clamped.
func winoPoolOut(d []int8, yt []int64, bias []int32, prep []quant.PreparedMultiplier, zp, lo, hi int64) {
	n := len(d)
	bias, prep = bias[:n], prep[:n]
	j := 0
	for ; j+1 < n; j += 2 {
		y := yt[2*j : 2*j+4]
		l00, h00 := split2(y[0])
		l01, h01 := split2(y[1])
		l10, h10 := split2(y[2])
		l11, h11 := split2(y[3])
		a0 := max(l00, l01, l10, l11)>>2 + bias[j]
		a1 := max(h00, h01, h10, h11)>>2 + bias[j+1]
		d[j] = int8(min(max(int64(prep[j].Apply(a0))+zp, lo), hi))
		d[j+1] = int8(min(max(int64(prep[j+1].Apply(a1))+zp, lo), hi))
	}
	if j < n {
		y := yt[2*j : 2*j+4]
		a0 := max(int32(y[0]), int32(y[1]), int32(y[2]), int32(y[3]))>>2 + bias[j]
		d[j] = int8(min(max(int64(prep[j].Apply(a0))+zp, lo), hi))
	}
}

// growPrep returns b with length n, reallocated only when its capacity is too small.
func growPrep(b []quant.PreparedMultiplier, n int) []quant.PreparedMultiplier {
	if cap(b) < n {
		return make([]quant.PreparedMultiplier, n)
	}
	return b[:n]
}

// winoInput1 stores B^T d B of the 4x4 patch of one channel at p (row stride rs) in x,
// position-major: x[i*4+j].
func winoInput1(x []int64, p []int8, rs int) {
	x = x[:16]
	p = p[:3*rs+4]
	r0, r1, r2, r3 := p[:4], p[rs:rs+4], p[2*rs:2*rs+4], p[3*rs:3*rs+4]
	for j := 0; j < 4; j++ {
		d0, d1, d2, d3 := int64(r0[j]), int64(r1[j]), int64(r2[j]), int64(r3[j])
		// Column j of B^T d, stored transposed for the row pass below.
		x[j], x[4+j], x[8+j], x[12+j] = d0-d2, d1+d2, d2-d1, d1-d3
	}
	for i := 0; i < 4; i++ {
		r := x[4*i : 4*i+4]
		e0, e1, e2, e3 := r[0], r[1], r[2], r[3]
		r[0], r[1], r[2], r[3] = e0-e2, e1+e2, e2-e1, e1-e3
	}
}

// winoTile1 computes the output tiles of all channel pairs for one input channel: the
// elementwise products and A^T M A without storing M. y[4q:4q+4] receives y00, y01, y10, y11 of
// pair q (two lanes per int64, scaled by 4); w is laid out [g][p][4] (winoWeights, InC = 1).
func winoTile1(y, x, w []int64, np4 int) {
	x = x[:16]
	y = y[:4*np4]
	w = w[:16*np4]
	for q := 0; q < np4; q++ {
		wq := w[(q/4)*64+q%4:]
		wq = wq[:61]
		var t0, t1 [4]int64
		for j := 0; j < 4; j++ {
			a, b, c, d := x[j]*wq[4*j], x[4+j]*wq[16+4*j], x[8+j]*wq[32+4*j], x[12+j]*wq[48+4*j]
			t0[j] = a + b + c
			t1[j] = b - c - d
		}
		yq := y[4*q : 4*q+4]
		yq[0] = t0[0] + t0[1] + t0[2]
		yq[1] = t0[1] - t0[2] - t0[3]
		yq[2] = t1[0] + t1[1] + t1[2]
		yq[3] = t1[1] - t1[2] - t1[3]
	}
}

// winoColumns stores B^T d for every column of a row of tiles: v[i*rs+k] for i < 4 and k < rs
// (rs = row length in bytes), from the four image rows at p (stride rs). Two horizontally
// adjacent tiles share two columns, so this pass runs once per column instead of per tile.
func winoColumns(v []int64, p []int8, rs int) {
	r0, r1, r2, r3 := p[:rs], p[rs:2*rs], p[2*rs:3*rs], p[3*rs:4*rs]
	v0, v1, v2, v3 := v[:rs], v[rs:2*rs], v[2*rs:3*rs], v[3*rs:4*rs]
	for k, a := range r0 {
		b, c, d := int64(r1[k]), int64(r2[k]), int64(r3[k])
		v0[k], v1[k], v2[k], v3[k] = int64(a)-c, b+c, c-b, b-d
	}
}

// winoRows finishes the input transform of the tile whose columns start at v[k0] (see
// winoColumns; c channels per pixel): x[(i*4+j)*c+ch] = (B^T d B)[i][j] of channel ch.
func winoRows(x, v []int64, rs, k0, c int) {
	x = x[:16*c]
	for i := 0; i < 4; i++ {
		vi := v[i*rs+k0 : i*rs+k0+4*c]
		a, b, cc, d := vi[:c], vi[c:2*c], vi[2*c:3*c], vi[3*c:4*c]
		xi := x[4*i*c : 4*(i+1)*c]
		x0, x1, x2, x3 := xi[:c], xi[c:2*c], xi[2*c:3*c], xi[3*c:4*c]
		for ch, av := range a {
			bv, cv, dv := b[ch], cc[ch], d[ch]
			x0[ch], x1[ch], x2[ch], x3[ch] = av-cv, bv+cv, cv-bv, bv-dv
		}
	}
}

// winoMul computes the elementwise stage of one tile: m[p*4*ngrp+q] = sum_ch x[p*c+ch]*W[p][ch][q]
// for the 16 positions p and the 4*ngrp channel pairs q (two int32 lanes per int64).
func winoMul(m, x, w []int64, c, ngrp int) {
	np4 := 4 * ngrp
	m = m[:16*np4]
	x = x[:16*c]
	w = w[:16*ngrp*c*4]
	for g := 0; g < ngrp; g++ {
		winoDot16(&m[4*g], np4, &x[0], &w[g*16*c*4], c)
	}
}

// winoDot16 computes, for the 16 positions p, the four pair sums sum_ch x[p*c+ch]*w[(p*c+ch)*4+t]
// into m[p*ms+t]. x holds 16*c values, w 64*c, m 15*ms+4 (checked by the caller, winoMul).
// Both operands advance linearly, so the loop needs few registers (the accumulators stay in
// registers; with more live values the compiler spilled them).
//
//go:noinline
func winoDot16(m *int64, ms int, x, w *int64, c int) {
	// Offsets, not advancing pointers: a pointer one past the last element is invalid in Go
	// (checkptr, -race) even if never dereferenced.
	xb, wb, mb := unsafe.Pointer(x), unsafe.Pointer(w), unsafe.Pointer(m)
	c4 := c &^ 3
	xi, mi := 0, 0 // x offset (w offset 4*xi) and m offset, in elements
	for p := 0; p < 16; p++ {
		var s0, s1, s2, s3 int64
		end := xi + c
		// Four channels per iteration while they last (the loop-carried values the compiler
		// reloads from the stack then cost once per 16 multiplications).
		for e4 := xi + c4; xi < e4; xi += 4 {
			xv := (*[4]int64)(unsafe.Add(xb, xi*8))
			q := (*[16]int64)(unsafe.Add(wb, xi*32))
			v0, v1, v2, v3 := xv[0], xv[1], xv[2], xv[3]
			s0 += v0*q[0] + v1*q[4] + v2*q[8] + v3*q[12]
			s1 += v0*q[1] + v1*q[5] + v2*q[9] + v3*q[13]
			s2 += v0*q[2] + v1*q[6] + v2*q[10] + v3*q[14]
			s3 += v0*q[3] + v1*q[7] + v2*q[11] + v3*q[15]
		}
		for ; xi < end; xi++ {
			xv := *(*int64)(unsafe.Add(xb, xi*8))
			q := (*[4]int64)(unsafe.Add(wb, xi*32))
			s0 += xv * q[0]
			s1 += xv * q[1]
			s2 += xv * q[2]
			s3 += xv * q[3]
		}
		d := (*[4]int64)(unsafe.Add(mb, mi*8))
		d[0], d[1], d[2], d[3] = s0, s1, s2, s3
		mi += ms
	}
}

// winoOutput returns the 2x2 output tile A^T M A of channel pair q (M at m[p*np4+q]), still as
// two lanes per int64 and scaled by 4.
func winoOutput(m []int64, q, np4 int) (y00, y01, y10, y11 int64) {
	m = m[:16*np4]
	var t0, t1 [4]int64
	for j := 0; j < 4; j++ {
		a, b, c, d := m[j*np4+q], m[(4+j)*np4+q], m[(8+j)*np4+q], m[(12+j)*np4+q]
		t0[j] = a + b + c
		t1[j] = b - c - d
	}
	y00 = t0[0] + t0[1] + t0[2]
	y01 = t0[1] - t0[2] - t0[3]
	y10 = t1[0] + t1[1] + t1[2]
	y11 = t1[1] - t1[2] - t1[3]
	return
}

// fcGrow64 is fcGrow8 for int64.
func fcGrow64(b []int64, n int) []int64 {
	if cap(b) < n {
		return make([]int64, n)
	}
	return b[:n]
}
