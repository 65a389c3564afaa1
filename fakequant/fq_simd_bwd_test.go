package fakequant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refAuxBwd is auxBwdRun's stride-1 loop exactly as it ran before the vector kernel (two
// sequential accumulators for the inside sum): the reference for gx (bit for bit) and the sums.
// abs returns the sum of the absolute terms (the scale of the sums' rounding error).
func refAuxBwd(as, gys, gxs []float32, lo, hi float32, plain bool) (s gradSums, abs float64) {
	var sumIn0, sumIn1, sumLo, sumHi float64
	i := 0
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
	for i, a := range as {
		g := float64(gys[i])
		switch {
		case a > 1:
			abs += math.Abs(g) * (1 + math.Abs(float64(hi)))
		case a < -1:
			abs += math.Abs(g) * (1 + math.Abs(float64(lo)))
		default:
			abs += math.Abs(float64(gys[i] * a))
		}
	}
	return gradSums{
		ds:   sumIn0 + sumIn1 + float64(lo)*sumLo + float64(hi)*sumHi,
		clip: sumLo + sumHi,
		high: sumHi,
	}, abs
}

// bwdAux draws an aux code: mostly residuals in [-0.5, 0.5], the clip codes, and values on and
// around the +-1 thresholds (never produced by the forward, but they pin the strict compares).
func bwdAux(rng *rand.Rand) float32 {
	switch rng.IntN(8) {
	case 0:
		return auxLow
	case 1:
		return auxHigh
	case 2:
		return []float32{1, -1, math.Nextafter32(1, 2), math.Nextafter32(-1, -2), 0.5, -0.5,
			float32(math.Copysign(0, -1)), 0, 1.5, -1.5}[rng.IntN(10)]
	default:
		return float32(rng.Float64() - 0.5)
	}
}

// bwdGrad draws an upstream gradient over a wide magnitude range, with signed zeros.
func bwdGrad(rng *rand.Rand) float32 {
	switch rng.IntN(16) {
	case 0:
		return 0
	case 1:
		return float32(math.Copysign(0, -1))
	}
	return float32((rng.Float64()*2 - 1) * math.Pow(10, rng.Float64()*12-6))
}

func sumClose(got, want, abs float64) bool {
	return math.Abs(got-want) <= 1e-12*abs
}

// TestAuxBwdRunSIMD checks auxBwdRun (stride 1, float32: AVX2 kernel where available) against the
// scalar loop: gx bit for bit (and nothing outside the run written) for lengths 0..70 at
// unaligned offsets, all aux codes, signed-zero and random gradients, plain on and off; the LSQ
// sums (reordered float64 sums on the vector path) within 1e-12 of the sum of absolute terms.
func TestAuxBwdRunSIMD(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	iters := 20
	if testing.Short() {
		iters = 4
	}
	fastRan := false
	for it := 0; it < iters; it++ {
		for n := 0; n <= 70; n++ {
			for _, plain := range []bool{false, true} {
				off := rng.IntN(8)
				size := off + n + 3
				aux, gy := make([]float32, size), make([]float32, size)
				for i := range aux {
					aux[i], gy[i] = bwdAux(rng), bwdGrad(rng)
				}
				lo, hi := float32(-128-rng.IntN(3)), float32(127+rng.IntN(3))
				want, got := make([]float32, size), make([]float32, size)
				fillSentinel(want)
				fillSentinel(got)
				ws, abs := refAuxBwd(aux[off:off+n], gy[off:off+n], want[off:off+n], lo, hi, plain)
				gs := auxBwdRun(aux, gy, got, off, off+n, 1, lo, hi, plain)
				name := fmt.Sprintf("n=%d off=%d plain=%v", n, off, plain)
				if !bitsEqual(t, name+" gx", got, want) {
					t.FailNow()
				}
				if !sumClose(gs.ds, ws.ds, abs) || !sumClose(gs.clip, ws.clip, abs) || !sumClose(gs.high, ws.high, abs) {
					t.Fatalf("%s: sums %+v, want %+v (abs %g)", name, gs, ws, abs)
				}
				if n >= fqSIMDMin {
					if _, _, _, d := auxBwdFast(aux[off:off+n], gy[off:off+n], make([]float32, n), plain); d > 0 {
						fastRan = true
					}
				}
			}
		}
	}
	if useAVX2 && !fastRan {
		t.Fatal("AVX2 available but the vector backward never ran")
	}
}

// TestAuxBwdRunSIMDHand checks the vector backward's sums and gx on a hand-computed case of 16
// elements (two vector blocks, every lane used): ds = sum g*a inside + lo*sum g low + hi*sum g high.
func TestAuxBwdRunSIMDHand(t *testing.T) {
	aux := []float32{0.25, auxHigh, -0.5, auxLow, 0, 0.5, auxHigh, -0.25,
		auxLow, 0.125, auxLow, auxHigh, -0.125, 0.375, 0.5, auxLow}
	gy := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	gx := make([]float32, 16)
	s := auxBwdRun(aux, gy, gx, 0, 16, 1, -128, 127, false)
	// inside: 0.25*1 - 0.5*3 + 0 + 0.5*6 - 0.25*8 + 0.125*10 - 0.125*13 + 0.375*14 + 0.5*15
	in := 0.25 - 1.5 + 3 - 2 + 1.25 - 1.625 + 5.25 + 7.5
	low, high := 4.0+9+11+16, 2.0+7+12
	if want := in - 128*low + 127*high; s.ds != want || s.clip != low+high || s.high != high {
		t.Fatalf("sums %+v, want ds %v clip %v high %v", s, want, low+high, high)
	}
	for i, a := range aux {
		want := gy[i]
		if a == auxLow || a == auxHigh {
			want = 0
		}
		if math.Float32bits(gx[i]) != math.Float32bits(want) {
			t.Fatalf("gx[%d] = %v, want %v", i, gx[i], want)
		}
	}
}

// refMinMaxPair is minMaxRun's stride-1 loop exactly as it ran before the vector kernel (two
// accumulators by index parity, strict compares, stop at the first non-finite value).
func refMinMaxPair(xs []float32) (lo, hi float32, bad int) {
	lo, hi = xs[0], xs[0]
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
			return 0, 0, i
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

// TestMinMaxRunSIMD checks minMaxRun (stride 1, float32: AVX2 kernel where available) against the
// scalar two-accumulator loop bit for bit (signed zero extremes included) and the first
// non-finite index, for lengths 1..70 at unaligned offsets, with zeros of both signs placed
// randomly (often as the only extreme: all-non-negative and all-non-positive data) and NaN/Inf.
func TestMinMaxRunSIMD(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 13))
	iters := 60
	if testing.Short() {
		iters = 10
	}
	nz := float32(math.Copysign(0, -1))
	fastRan := false
	for it := 0; it < iters; it++ {
		for n := 1; n <= 70; n++ {
			off := rng.IntN(8)
			buf := make([]float32, off+n+3)
			mode := rng.IntN(4)
			for i := range buf {
				v := float32(rng.NormFloat64())
				switch mode {
				case 1:
					v = float32(math.Abs(float64(v)))
				case 2:
					v = -float32(math.Abs(float64(v)))
				}
				if rng.IntN(6) == 0 {
					v = []float32{0, nz}[rng.IntN(2)]
				}
				buf[i] = v
			}
			if rng.IntN(4) == 0 {
				buf[off+rng.IntN(n)] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}[rng.IntN(3)]
			}
			xs := buf[off : off+n]
			wlo, whi, wbad := refMinMaxPair(xs)
			if wbad >= 0 {
				wbad += off
			}
			lo, hi, bad := minMaxRun(buf, off, off+n, 1)
			name := fmt.Sprintf("n=%d off=%d mode=%d", n, off, mode)
			if bad != wbad || math.Float32bits(lo) != math.Float32bits(wlo) || math.Float32bits(hi) != math.Float32bits(whi) {
				t.Fatalf("%s: minMaxRun = %v, %v, %d; want %v, %v, %d (x %v)", name, lo, hi, bad, wlo, whi, wbad, xs)
			}
			if _, _, d := minMaxFast(xs); d > 0 {
				fastRan = true
			}
		}
	}
	if useAVX2 && !fastRan {
		t.Fatal("AVX2 available but the vector min/max never ran")
	}
}

func BenchmarkAuxBwdRunFloat32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1 << 16
	aux, gy, gx := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range aux {
		aux[i], gy[i] = bwdAux(rng), bwdGrad(rng)
	}
	b.SetBytes(int64(n) * 12)
	for b.Loop() {
		auxBwdRun(aux, gy, gx, 0, n, 1, -128, 127, false)
	}
}

func BenchmarkMinMaxRunFloat32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1 << 16
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	b.SetBytes(int64(n) * 4)
	for b.Loop() {
		minMaxRun(x, 0, n, 1)
	}
}
