package fakequant

import (
	"math"

	"github.com/qatgo/qatgo/quant"
)

// Element kernels, generic over the graph's float type. They call package quant for the rounding
// rule and the quantize/dequantize formula; nothing here re-implements either.

// nonFinite reports whether x is NaN or +-Inf (x-x is NaN exactly then).
func nonFinite[F quant.Float](x F) bool { return x-x != 0 }

// Clip codes stored in the forward's aux buffer: inside elements store the rounding residual
// r - v in [-0.5, 0.5]; clipped elements store auxLow or auxHigh.
const (
	auxLow  = -2
	auxHigh = 2
)

// fqRun fake-quantizes x[i] into y[i] for i = start, start+stride, ... < end with one (s, z) and
// records in aux[i] the residual or clip code the backward needs. It returns the index of the first
// non-finite input, or -1.
//
// For finite x it computes clamp(quant.Round(x/s), qmin-z, qmax-z) * s (+0 turns -0 into 0), which
// equals quant.FakeQuantizeValue(x, s, z, qmin, qmax) bit for bit: q - z is the clamped rounded
// quotient, an integer exactly representable in F. The tests check this equality on edge cases.
// z must lie in [qmin, qmax] (see clipBounds).
func fqRun[F quant.Float](x, y, aux []F, start, end, stride int, s F, z, qmin, qmax int32) int {
	lo, hi := F(qmin-z), F(qmax-z)
	vlo, vhi := clipBounds(lo, hi)
	if stride == 1 {
		xs := x[start:end]
		ys, as := y[start:end], aux[start:end]
		ys, as = ys[:len(xs)], as[:len(xs)]
		for i := fqRunFast(xs, ys, as, s, lo, hi); i < len(xs); i++ {
			xi := xs[i]
			v := xi / s
			if v > vlo && v < vhi { // inside (and not NaN)
				r := quant.Round(v)
				ys[i], as[i] = (r+0)*s, r-v
				continue
			}
			if xi-xi != 0 {
				return start + i
			}
			if v < 0 {
				ys[i], as[i] = lo*s, auxLow
			} else {
				ys[i], as[i] = hi*s, auxHigh
			}
		}
		return -1
	}
	for i := start; i < end; i += stride {
		xi := x[i]
		v := xi / s
		if v > vlo && v < vhi {
			r := quant.Round(v)
			y[i], aux[i] = (r+0)*s, r-v
			continue
		}
		if xi-xi != 0 {
			return i
		}
		if v < 0 {
			y[i], aux[i] = lo*s, auxLow
		} else {
			y[i], aux[i] = hi*s, auxHigh
		}
	}
	return -1
}

// clipBounds returns the bounds on v = x/s of the elements that are not clipped: lo <= Round(v) <= hi
// exactly when vlo < v < vhi. It needs lo <= 0 <= hi (a zero point inside [qmin, qmax], which
// every parameter path guarantees): then Round(v) < lo iff v <= lo-0.5 and Round(v) > hi iff
// v >= hi+0.5, because ties round away from zero, and lo-0.5, hi+0.5 are exact in F. NaN fails
// both comparisons, so one test finds the clipped and the non-finite elements.
func clipBounds[F quant.Float](lo, hi F) (vlo, vhi F) { return lo - 0.5, hi + 0.5 }

// fqRunMinMax is fqRun that also returns the min and max of the run's inputs (single-pass observer).
func fqRunMinMax[F quant.Float](x, y, aux []F, start, end, stride int, s F, z, qmin, qmax int32) (mn, mx F, bad int) {
	lo, hi := F(qmin-z), F(qmax-z)
	vlo, vhi := clipBounds(lo, hi)
	mn, mx = x[start], x[start]
	i0 := start
	if stride == 1 {
		if a, b, n := fqRunMinMaxFast(x[start:end], y[start:end], aux[start:end], s, lo, hi); n > 0 {
			mn, mx, i0 = a, b, start+n
		}
	}
	for i := i0; i < end; i += stride {
		xi := x[i]
		if xi < mn {
			mn = xi
		}
		if xi > mx {
			mx = xi
		}
		v := xi / s
		if v > vlo && v < vhi {
			r := quant.Round(v)
			y[i], aux[i] = (r+0)*s, r-v
			continue
		}
		if xi-xi != 0 {
			return 0, 0, i
		}
		if v < 0 {
			y[i], aux[i] = lo*s, auxLow
		} else {
			y[i], aux[i] = hi*s, auxHigh
		}
	}
	return mn, mx, -1
}

// fqRows fake-quantizes a tensor viewed as rows of len(s) elements, element c of each row using
// (s[c], lo[c], hi[c]) with lo = qmin-z, hi = qmax-z (PerChannel on the last axis), like fqRun.
// It returns the first non-finite index or -1.
func fqRows[F quant.Float](x, y, aux []F, s, lo, hi []F) int {
	c := len(s)
	lo, hi = lo[:c], hi[:c]
	r0, j0 := 0, 0
	if c%8 == 0 && c > 0 {
		done := fqRowsFast(x[:len(x)-len(x)%c], y, aux, s, lo, hi) // whole rows, then the Go loop
		r0, j0 = done-done%c, done%c
	}
	for r := r0; r+c <= len(x); r += c {
		xs, ys, as := x[r:r+c], y[r:r+c], aux[r:r+c]
		j := j0
		if c%8 != 0 {
			j = fqRowsFast(xs, ys, as, s, lo, hi) // this row's first c&^7 columns
		}
		for j0 = 0; j < c; j++ {
			xi := xs[j]
			v := xi / s[j]
			if vlo, vhi := clipBounds(lo[j], hi[j]); v > vlo && v < vhi {
				q := quant.Round(v)
				ys[j], as[j] = (q+0)*s[j], q-v
				continue
			}
			if xi-xi != 0 {
				return r + j
			}
			if v < 0 {
				ys[j], as[j] = lo[j]*s[j], auxLow
			} else {
				ys[j], as[j] = hi[j]*s[j], auxHigh
			}
		}
	}
	return -1
}

// auxBwdRun is the backward of one run from the forward's aux codes (no division, no rounding):
// gx = gy inside (and everywhere with plain), 0 when clipped; it returns the LSQ sums.
func auxBwdRun[F quant.Float](aux, gy, gx []F, start, end, stride int, lo, hi F, plain bool) gradSums {
	var sumIn0, sumIn1, sumLo, sumHi float64
	if stride == 1 {
		as := aux[start:end]
		gys, gxs := gy[start:end], gx[start:end]
		gys, gxs = gys[:len(as)], gxs[:len(as)]
		var i int
		sumIn0, sumLo, sumHi, i = auxBwdFast(as, gys, gxs, plain)
		for ; i+1 < len(as); i += 2 {
			a0, a1 := as[i], as[i+1]
			g0, g1 := gys[i], gys[i+1]
			if a0 > 1 {
				sumHi += float64(g0)
				g0 = 0
			} else if a0 < -1 {
				sumLo += float64(g0)
				g0 = 0
			} else {
				sumIn0 += float64(g0 * a0)
			}
			if a1 > 1 {
				sumHi += float64(g1)
				g1 = 0
			} else if a1 < -1 {
				sumLo += float64(g1)
				g1 = 0
			} else {
				sumIn1 += float64(g1 * a1)
			}
			if plain {
				g0, g1 = gys[i], gys[i+1]
			}
			gxs[i], gxs[i+1] = g0, g1
		}
		for ; i < len(as); i++ {
			a, g := as[i], gys[i]
			if a > 1 {
				sumHi += float64(g)
				g = 0
			} else if a < -1 {
				sumLo += float64(g)
				g = 0
			} else {
				sumIn0 += float64(g * a)
			}
			if plain {
				g = gys[i]
			}
			gxs[i] = g
		}
	} else {
		for i := start; i < end; i += stride {
			a, g := aux[i], gy[i]
			if a > 1 {
				sumHi += float64(g)
				g = 0
			} else if a < -1 {
				sumLo += float64(g)
				g = 0
			} else {
				sumIn0 += float64(g * a)
			}
			if plain {
				g = gy[i]
			}
			gx[i] = g
		}
	}
	return gradSums{
		ds:   sumIn0 + sumIn1 + float64(lo)*sumLo + float64(hi)*sumHi,
		clip: sumLo + sumHi,
		high: sumHi,
	}
}

// auxBwdRows is auxBwdRun for the rows layout (per-column lo, hi); sums go to ds and clip.
func auxBwdRows[F quant.Float](aux, gy, gx []F, lo, hi []F, plain bool, ds, clip []float64) {
	c := len(lo)
	hi, ds, clip = hi[:c], ds[:c], clip[:c]
	for r := 0; r+c <= len(aux); r += c {
		as, gys, gxs := aux[r:r+c], gy[r:r+c], gx[r:r+c]
		for j := range as {
			a, g := as[j], gys[j]
			if a > 1 {
				ds[j] += float64(g) * float64(hi[j])
				clip[j] += float64(g)
				g = 0
			} else if a < -1 {
				ds[j] += float64(g) * float64(lo[j])
				clip[j] += float64(g)
				g = 0
			} else {
				ds[j] += float64(g * a)
			}
			if plain {
				g = gys[j]
			}
			gxs[j] = g
		}
	}
}

// minMaxRun returns the min and max of x[start:end:stride] and the first non-finite index or -1.
// Plain comparisons (NaN is excluded first) keep the loop cheap: new extremes are rare.
func minMaxRun[F quant.Float](x []F, start, end, stride int) (lo, hi F, bad int) {
	lo, hi = x[start], x[start]
	if stride == 1 {
		xs := x[start:end]
		if mn, mx, done := minMaxFast(xs); done > 0 {
			for i := done; i < len(xs); i++ {
				a := xs[i]
				if a-a != 0 {
					return 0, 0, start + i
				}
				if a < mn {
					mn = a
				}
				if a > mx {
					mx = a
				}
			}
			if mn == 0 {
				mn = pairFirstZero(xs)
			}
			if mx == 0 {
				mx = pairFirstZero(xs)
			}
			return mn, mx, -1
		}
		lo1, hi1 := lo, hi
		i := 0
		for ; i+1 < len(xs); i += 2 {
			a, b := xs[i], xs[i+1]
			if a-a != 0 || b-b != 0 {
				break
			}
			if a < lo {
				lo = a
			}
			if a > hi {
				hi = a
			}
			if b < lo1 {
				lo1 = b
			}
			if b > hi1 {
				hi1 = b
			}
		}
		for ; i < len(xs); i++ {
			a := xs[i]
			if a-a != 0 {
				return 0, 0, start + i
			}
			if a < lo {
				lo = a
			}
			if a > hi {
				hi = a
			}
		}
		if lo1 < lo {
			lo = lo1
		}
		if hi1 > hi {
			hi = hi1
		}
		return lo, hi, -1
	}
	for i := start; i < end; i += stride {
		xi := x[i]
		if xi-xi != 0 {
			return 0, 0, i
		}
		if xi < lo {
			lo = xi
		}
		if xi > hi {
			hi = xi
		}
	}
	return lo, hi, -1
}

// gradSums are the per-slice sums a backward run produces.
type gradSums struct {
	ds   float64 // sum of g * dx_hat/ds
	clip float64 // sum of g over clipped elements (offset gradient = -s * clip)
	high float64 // sum of g over elements clipped high (PACT alpha gradient)
}

// bwdRun computes the input gradient gx from gy for one run with (s, z) and returns the scale and
// clip sums of the LSQ surrogate. It returns the first non-finite input index or -1.
func bwdRun[F quant.Float](x, gy, gx []F, start, end, stride int, s F, z, qmin, qmax int32, plain bool) (gradSums, int) {
	var sumIn0, sumIn1, sumLo, sumHi float64
	lo, hi := F(qmin-z), F(qmax-z) // inside iff lo <= Round(v) <= hi
	if stride == 1 && !plain {
		xs := x[start:end]
		gys, gxs := gy[start:end], gx[start:end]
		gys, gxs = gys[:len(xs)], gxs[:len(xs)]
		i := 0
		for ; i+1 < len(xs); i += 2 { // two independent accumulators shorten the add chain
			x0, x1 := xs[i], xs[i+1]
			if x0-x0 != 0 || x1-x1 != 0 {
				break
			}
			g0, g1 := gys[i], gys[i+1]
			v0, v1 := x0/s, x1/s
			r0, r1 := quant.Round(v0), quant.Round(v1)
			if r0 < lo {
				sumLo += float64(g0)
				g0 = 0
			} else if r0 > hi {
				sumHi += float64(g0)
				g0 = 0
			} else {
				sumIn0 += float64(g0 * (r0 - v0))
			}
			if r1 < lo {
				sumLo += float64(g1)
				g1 = 0
			} else if r1 > hi {
				sumHi += float64(g1)
				g1 = 0
			} else {
				sumIn1 += float64(g1 * (r1 - v1))
			}
			gxs[i], gxs[i+1] = g0, g1
		}
		for ; i < len(xs); i++ {
			xi := xs[i]
			if xi-xi != 0 {
				return gradSums{}, start + i
			}
			g := gys[i]
			v := xi / s
			r := quant.Round(v)
			if r < lo {
				sumLo += float64(g)
				g = 0
			} else if r > hi {
				sumHi += float64(g)
				g = 0
			} else {
				sumIn0 += float64(g * (r - v))
			}
			gxs[i] = g
		}
	} else {
		for i := start; i < end; i += stride {
			xi := x[i]
			if xi-xi != 0 {
				return gradSums{}, i
			}
			g := gy[i]
			v := xi / s
			r := quant.Round(v)
			switch {
			case r < lo:
				sumLo += float64(g)
				if !plain {
					g = 0
				}
			case r > hi:
				sumHi += float64(g)
				if !plain {
					g = 0
				}
			default:
				sumIn0 += float64(g * (r - v))
			}
			gx[i] = g
		}
	}
	return gradSums{
		ds:   sumIn0 + sumIn1 + float64(lo)*sumLo + float64(hi)*sumHi,
		clip: sumLo + sumHi,
		high: sumHi,
	}, -1
}

// bwdRows is bwdRun for rows of len(s) elements with per-column (s, lo = qmin-z, hi = qmax-z)
// (PerChannel on the last axis). ds and clip are accumulated into the per-column slices.
func bwdRows[F quant.Float](x, gy, gx []F, s, lo, hi []F, plain bool, ds, clip []float64) int {
	c := len(s)
	lo, hi, ds, clip = lo[:c], hi[:c], ds[:c], clip[:c]
	for r := 0; r+c <= len(x); r += c {
		xs, gys, gxs := x[r:r+c], gy[r:r+c], gx[r:r+c]
		for j := range xs {
			xi := xs[j]
			if xi-xi != 0 {
				return r + j
			}
			g := gys[j]
			v := xi / s[j]
			rv := quant.Round(v)
			switch {
			case rv < lo[j]:
				ds[j] += float64(g) * float64(lo[j])
				clip[j] += float64(g)
				if !plain {
					g = 0
				}
			case rv > hi[j]:
				ds[j] += float64(g) * float64(hi[j])
				clip[j] += float64(g)
				if !plain {
					g = 0
				}
			default:
				ds[j] += float64(g * (rv - v))
			}
			gxs[j] = g
		}
	}
	return -1
}

// pactBwdRun computes the PACT input gradient (1 on [0, alpha) with ClippedSTE) and returns the sum
// of gy where x >= alpha (the alpha gradient).
func pactBwdRun[F quant.Float](x, gy, gx []F, start, end, stride int, alpha F, plain bool) (float64, int) {
	var sum float64
	for i := start; i < end; i += stride {
		xi := x[i]
		if nonFinite(xi) {
			return 0, i
		}
		g := gy[i]
		if xi >= alpha {
			sum += float64(g)
			if !plain {
				g = 0
			}
		} else if xi < 0 && !plain {
			g = 0
		}
		gx[i] = g
	}
	return sum, -1
}

// scaleFromLog is the forward scale of an LSQ slice: max(float32(exp(t)), quant.MinScale).
func scaleFromLog(t float64) float32 {
	s := float32(math.Exp(t))
	if !(s >= quant.MinScale) { // also catches NaN
		s = quant.MinScale
	}
	if math.IsInf(float64(s), 1) {
		s = math.MaxFloat32
	}
	return s
}

// pactAlphaFloor returns alpha floored so that the scale alpha/qmax is at least quant.MinScale.
func pactAlphaFloor(alpha float64, qmax int32) float64 {
	if f := float64(qmax) * quant.MinScale; !(alpha >= f) {
		return f
	}
	return alpha
}

// pactScale is the forward scale of a PACT slice: float32(alpha/qmax) with alpha floored.
func pactScale(alpha float64, qmax int32) float32 {
	s := float32(pactAlphaFloor(alpha, qmax) / float64(qmax))
	if !(s >= quant.MinScale) {
		s = quant.MinScale
	}
	return s
}

// zeroFromOffset is the forward zero point of a learnable offset: clamp(Round(zr), qmin, qmax).
func zeroFromOffset(zr float64, qmin, qmax int32) int32 {
	if zr != zr {
		return quant.Clamp(0, qmin, qmax)
	}
	r := quant.Round(zr)
	if r <= float64(qmin) {
		return qmin
	}
	if r >= float64(qmax) {
		return qmax
	}
	return int32(r)
}
