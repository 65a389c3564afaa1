package fakequant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// refRun is the scalar stride-1 fake-quant loop exactly as fqRun ran it before the vector kernel
// (the reference the AVX2 path must match bit for bit).
func refRun(xs, ys, as []float32, s float32, z, qmin, qmax int32) int {
	lo, hi := float32(qmin-z), float32(qmax-z)
	vlo, vhi := lo-0.5, hi+0.5
	for i, xi := range xs {
		v := xi / s
		if v > vlo && v < vhi {
			r := float32(math.Round(float64(v)))
			ys[i], as[i] = (r+0)*s, r-v
			continue
		}
		if xi-xi != 0 {
			return i
		}
		if v < 0 {
			ys[i], as[i] = lo*s, auxLow
		} else {
			ys[i], as[i] = hi*s, auxHigh
		}
	}
	return -1
}

// refMinMax is the sequential min/max rule of fqRunMinMax (start at xs[0], replace on strict <, >).
func refMinMax(xs []float32) (mn, mx float32) {
	mn, mx = xs[0], xs[0]
	for _, xi := range xs {
		if xi < mn {
			mn = xi
		}
		if xi > mx {
			mx = xi
		}
	}
	return mn, mx
}

type fqRange struct{ z, qmin, qmax int32 }

var simdRanges = []fqRange{{0, -128, 127}, {0, -127, 127}, {-128, -128, 127}, {37, 0, 255}, {0, 0, 255},
	{255, 0, 255}, {0, -8, 7}, {3, 0, 15}, {0, -2, 1}, {0, -1, 1}, {1, 0, 3}}

// simdScale draws a scale: log-uniform over 1e-30..1e30, or a power of two (ties exact).
func simdScale(rng *rand.Rand) float32 {
	if rng.IntN(2) == 0 {
		return float32(math.Ldexp(1, rng.IntN(160)-80))
	}
	return float32(math.Pow(10, rng.Float64()*60-30))
}

// simdValue draws an input around the grid of scale s: ties (k+0.5)*s, clip points and their
// neighbours, zeros of both signs, random values inside and far outside the range.
func simdValue(rng *rand.Rand, s float32, r fqRange) float32 {
	lo, hi := float32(r.qmin-r.z), float32(r.qmax-r.z)
	switch rng.IntN(10) {
	case 0:
		return float32(rng.IntN(int(r.qmax-r.qmin)+9)+int(r.qmin-r.z)-4) * s
	case 1:
		return (float32(rng.IntN(int(r.qmax-r.qmin)+9)+int(r.qmin-r.z)-4) + 0.5) * s
	case 2:
		c := []float32{lo - 0.5, hi + 0.5, lo, hi, 0.5, -0.5, 1.5, -1.5}[rng.IntN(8)] * s
		switch rng.IntN(3) {
		case 0:
			return math.Nextafter32(c, float32(math.Inf(1)))
		case 1:
			return math.Nextafter32(c, float32(math.Inf(-1)))
		}
		return c
	case 3:
		return float32(math.Copysign(0, float64(rng.IntN(2)*2-1)))
	case 4:
		return float32(rng.NormFloat64() * 1e30)
	case 5:
		return float32(rng.NormFloat64() * 1e-38) // subnormals
	case 6:
		return []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}[rng.IntN(3)]
	}
	return float32((rng.Float64()*float64(hi-lo+6) + float64(lo) - 3) * float64(s))
}

func bitsEqual(t *testing.T, what string, got, want []float32) bool {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s[%d] = %v (%#08x), want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]),
				want[i], math.Float32bits(want[i]))
			return false
		}
	}
	return true
}

func fillSentinel(v []float32) {
	for i := range v {
		v[i] = float32(i) + 1234.5
	}
}

// TestFqRunSIMDBitExact checks fqRun (stride 1, float32: AVX2 kernel where available) and
// fqRunMinMax against the scalar reference loop: y, aux, min, max bit for bit, the first
// non-finite index, and untouched/identical outputs around it, for lengths 0..70 at unaligned
// offsets, many scales, ties, clip points, signed zeros and NaN/Inf at every position class.
func TestFqRunSIMDBitExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	iters := 20
	if testing.Short() {
		iters = 3
	}
	fastRan := false
	for it := 0; it < iters; it++ {
		for n := 0; n <= 70; n++ {
			for _, r := range simdRanges {
				s := simdScale(rng)
				off := rng.IntN(8)
				buf := make([]float32, off+n+3)
				for i := range buf {
					buf[i] = simdValue(rng, s, r)
				}
				bad := -1
				if n > 0 && rng.IntN(3) == 0 {
					bad = off + rng.IntN(n)
					buf[bad] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}[rng.IntN(3)]
				}
				xs := buf[off : off+n]
				wantY, wantA := make([]float32, len(buf)), make([]float32, len(buf))
				fillSentinel(wantY)
				fillSentinel(wantA)
				wantBad := refRun(xs, wantY[off:off+n], wantA[off:off+n], s, r.z, r.qmin, r.qmax)
				if wantBad >= 0 {
					wantBad += off
				}
				name := fmt.Sprintf("n=%d off=%d s=%g r=%v", n, off, s, r)

				gotY, gotA := make([]float32, len(buf)), make([]float32, len(buf))
				fillSentinel(gotY)
				fillSentinel(gotA)
				gotBad := fqRun(buf, gotY, gotA, off, off+n, 1, s, r.z, r.qmin, r.qmax)
				if gotBad != wantBad {
					t.Fatalf("%s: fqRun bad = %d, want %d", name, gotBad, wantBad)
				}
				if !bitsEqual(t, name+" fqRun y", gotY, wantY) || !bitsEqual(t, name+" fqRun aux", gotA, wantA) {
					t.FailNow()
				}
				if wantBad < 0 {
					for i, xi := range xs {
						if fq := quant.FakeQuantizeValue(xi, s, r.z, r.qmin, r.qmax); math.Float32bits(fq) != math.Float32bits(gotY[off+i]) {
							t.Fatalf("%s: y[%d] = %v, quant.FakeQuantizeValue = %v", name, i, gotY[off+i], fq)
						}
					}
				}
				if n == 0 {
					continue
				}
				fillSentinel(gotY)
				fillSentinel(gotA)
				mn, mx, gotBad := fqRunMinMax(buf, gotY, gotA, off, off+n, 1, s, r.z, r.qmin, r.qmax)
				if gotBad != wantBad {
					t.Fatalf("%s: fqRunMinMax bad = %d, want %d", name, gotBad, wantBad)
				}
				if !bitsEqual(t, name+" fqRunMinMax y", gotY, wantY) || !bitsEqual(t, name+" fqRunMinMax aux", gotA, wantA) {
					t.FailNow()
				}
				if wantBad < 0 {
					wmn, wmx := refMinMax(xs)
					if math.Float32bits(mn) != math.Float32bits(wmn) || math.Float32bits(mx) != math.Float32bits(wmx) {
						t.Fatalf("%s: min, max = %v, %v, want %v, %v", name, mn, mx, wmn, wmx)
					}
				}
				if n >= fqSIMDMin && (wantBad < 0 || wantBad-off >= fqSIMDMin) {
					if fqRunFast(xs, make([]float32, n), make([]float32, n), s, float32(r.qmin-r.z), float32(r.qmax-r.z)) > 0 {
						fastRan = true
					}
				}
			}
		}
	}
	if useAVX2 && !fastRan {
		t.Fatal("AVX2 available but the vector kernel never ran")
	}
	t.Logf("vector kernel ran: %v", fastRan)
}

// TestFqRunMinMaxSignedZeros checks the sign of a zero min/max against the sequential rule (the
// first zero wins) when zeros of both signs sit in different vector lanes.
func TestFqRunMinMaxSignedZeros(t *testing.T) {
	nz := float32(math.Copysign(0, -1))
	for _, tc := range []struct {
		name string
		x    []float32
	}{
		{"pos first", []float32{1, 2, 0, 3, 4, 5, 6, 7, nz, 9, 1, 2, 3, 4, 5, 6}},
		{"neg first", []float32{1, 2, 3, nz, 4, 5, 6, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7}},
		{"max zero", []float32{-1, -2, nz, -3, -4, -5, -6, -7, 0, -9, -1, -2, -3, -4, -5, -6}},
		{"max zero neg first elem", []float32{nz, -2, 0, -3, -4, -5, -6, -7, 0, -9, -1, -2, -3, -4, -5, -6}},
		{"all zeros", []float32{0, nz, 0, nz, nz, 0, 0, nz, nz, 0, nz, 0, 0, nz, 0, nz}},
		{"all neg zeros", []float32{nz, nz, 0, nz, nz, 0, 0, nz, nz, 0, nz, 0, 0, nz, 0, nz}},
	} {
		n := len(tc.x)
		y, a := make([]float32, n), make([]float32, n)
		mn, mx, bad := fqRunMinMax(tc.x, y, a, 0, n, 1, 0.25, 0, -128, 127)
		wmn, wmx := refMinMax(tc.x)
		if bad >= 0 || math.Float32bits(mn) != math.Float32bits(wmn) || math.Float32bits(mx) != math.Float32bits(wmx) {
			t.Errorf("%s: got %v %v (bad %d), want %v %v", tc.name, mn, mx, bad, wmn, wmx)
		}
	}
}

// TestFqRunSIMDNegativeZero checks by hand that small negative inputs, which round to -0, give
// y = +0 (the (r+0) of fqRun) and aux = r - v, in every vector lane and in the scalar tail.
func TestFqRunSIMDNegativeZero(t *testing.T) {
	const s = 0.25
	x := make([]float32, 19)
	for i := range x {
		x[i] = -0.1 * s
	}
	x[4] = float32(math.Copysign(0, -1))
	y, a := make([]float32, len(x)), make([]float32, len(x))
	if bad := fqRun(x, y, a, 0, len(x), 1, s, 0, -128, 127); bad >= 0 {
		t.Fatalf("bad = %d", bad)
	}
	for i := range x {
		wantA := float32(0) - x[i]/s
		if math.Float32bits(y[i]) != 0 || math.Float32bits(a[i]) != math.Float32bits(wantA) {
			t.Errorf("x[%d] = %v: y = %v (%#08x), aux = %v; want +0, %v", i, x[i], y[i], math.Float32bits(y[i]), a[i], wantA)
		}
	}
}

// refRows is fqRows's scalar loop (per-channel on the last axis) before the vector kernel.
func refRows(x, y, aux []float32, s, lo, hi []float32) int {
	c := len(s)
	for r := 0; r+c <= len(x); r += c {
		for j := 0; j < c; j++ {
			xi := x[r+j]
			v := xi / s[j]
			if v > lo[j]-0.5 && v < hi[j]+0.5 {
				q := float32(math.Round(float64(v)))
				y[r+j], aux[r+j] = (q+0)*s[j], q-v
				continue
			}
			if xi-xi != 0 {
				return r + j
			}
			if v < 0 {
				y[r+j], aux[r+j] = lo[j]*s[j], auxLow
			} else {
				y[r+j], aux[r+j] = hi[j]*s[j], auxHigh
			}
		}
	}
	return -1
}

// TestFqRowsSIMDBitExact checks fqRows (AVX2 kernel where available) against the scalar loop bit
// for bit, with per-column scales and zero points, channel counts below, at and between multiples
// of 8, a partial trailing row, and NaN/Inf anywhere (same index, same outputs).
func TestFqRowsSIMDBitExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	iters := 10
	if testing.Short() {
		iters = 2
	}
	fastRan := false
	for it := 0; it < iters; it++ {
		for _, c := range []int{1, 3, 7, 8, 9, 15, 16, 17, 23, 24, 32, 40, 41} {
			for rows := 0; rows <= 5; rows++ {
				s, lo, hi := make([]float32, c), make([]float32, c), make([]float32, c)
				rs := make([]fqRange, c)
				for j := range s {
					rs[j] = simdRanges[rng.IntN(len(simdRanges))]
					s[j] = simdScale(rng)
					lo[j], hi[j] = float32(rs[j].qmin-rs[j].z), float32(rs[j].qmax-rs[j].z)
				}
				n := rows*c + rng.IntN(2)*rng.IntN(c+1) // sometimes a partial trailing row
				off := rng.IntN(8)
				buf := make([]float32, off+n)
				for i := range buf {
					j := (i - off + c*8) % c
					buf[i] = simdValue(rng, s[j], rs[j])
				}
				if n > 0 && rng.IntN(3) == 0 {
					buf[off+rng.IntN(n)] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}[rng.IntN(3)]
				}
				x := buf[off:]
				wantY, wantA := make([]float32, n), make([]float32, n)
				gotY, gotA := make([]float32, n), make([]float32, n)
				fillSentinel(wantY)
				fillSentinel(wantA)
				fillSentinel(gotY)
				fillSentinel(gotA)
				wantBad := refRows(x, wantY, wantA, s, lo, hi)
				gotBad := fqRows(x, gotY, gotA, s, lo, hi)
				name := fmt.Sprintf("c=%d rows=%d n=%d off=%d", c, rows, n, off)
				if gotBad != wantBad {
					t.Fatalf("%s: bad = %d, want %d", name, gotBad, wantBad)
				}
				if !bitsEqual(t, name+" y", gotY, wantY) || !bitsEqual(t, name+" aux", gotA, wantA) {
					t.FailNow()
				}
				if c >= 8 && n >= c && wantBad < 0 {
					if fqRowsFast(x[:c], make([]float32, c), make([]float32, c), s, lo, hi) > 0 {
						fastRan = true
					}
				}
			}
		}
	}
	if useAVX2 && !fastRan {
		t.Fatal("AVX2 available but the rows kernel never ran")
	}
}

func BenchmarkFqRunFloat32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1 << 16
	x, y, a := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	b.SetBytes(int64(4 * n))
	b.Run("fqRun", func(b *testing.B) {
		for b.Loop() {
			fqRun(x, y, a, 0, n, 1, 0.02, 0, -128, 127)
		}
	})
	b.Run("fqRunMinMax", func(b *testing.B) {
		for b.Loop() {
			fqRunMinMax(x, y, a, 0, n, 1, 0.02, 0, -128, 127)
		}
	})
	b.Run("scalarRef", func(b *testing.B) {
		for b.Loop() {
			refRun(x, y, a, 0.02, 0, -128, 127)
		}
	})
}
