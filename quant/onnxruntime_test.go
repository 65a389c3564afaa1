package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// float32Requant is the reference: the float32 arithmetic itself (Go's float32 conversion and
// multiplication round to nearest even, as SSE's cvtdq2ps and mulps do).
func float32Requant(acc int32, m float32) int32 {
	v := math.RoundToEven(float64(float32(acc) * m))
	return int32(min(max(v, math.MinInt32), math.MaxInt32))
}

// TestFloat32MultiplierMatchesFloat32 checks the integer computation against float32 arithmetic on
// random accumulators and multipliers, on accumulators built to land near and on .5 boundaries, on
// accumulators above 2^24 (where float32(acc) rounds) and on the example of the README (acc 51587,
// exact 143.4999986, float32 143.5, rounded to 144).
func TestFloat32MultiplierMatchesFloat32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	check := func(acc int32, m float32) {
		t.Helper()
		fm, err := NewFloat32Multiplier(m)
		if err != nil {
			t.Fatal(err)
		}
		if fm.Float() != float64(m) {
			t.Fatalf("multiplier %v holds %v", m, fm.Float())
		}
		if got, want := fm.Apply(acc), float32Requant(acc, m); got != want {
			t.Fatalf("acc %d * %v (%#x): got %d, float32 arithmetic gives %d", acc, m, math.Float32bits(m), got, want)
		}
	}
	for i := 0; i < 500_000; i++ {
		m := float32(math.Ldexp(1+r.Float64(), -r.IntN(30)))
		var acc int32
		switch i % 4 {
		case 0:
			acc = int32(r.Uint32())
		case 1:
			acc = r.Int32N(1<<20) - 1<<19
		case 2: // near a .5 boundary: acc = (n + 0.5)/m, +-2
			n := float64(r.IntN(600) - 300)
			acc = int32(math.Round((n+0.5)/float64(m))) + r.Int32N(5) - 2
		default: // multipliers with few mantissa bits make exact ties
			m = float32(math.Ldexp(float64(1+r.IntN(16)), -r.IntN(20)))
			acc = r.Int32N(1<<16) - 1<<15
		}
		check(acc, m)
	}
	for _, acc := range []int32{0, 1, -1, math.MaxInt32, math.MinInt32, 1 << 24, 1<<24 + 1, -(1<<24 + 3)} {
		for _, m := range []float32{0, 1e-45, 1e-30, 1e-7, 0.5, 1, 3.75, 1e5, 1e30} {
			check(acc, m)
		}
	}
	m := float32(143.4999986 / 51587)
	fm, _ := NewFloat32Multiplier(m)
	if got := fm.Apply(51587); got != float32Requant(51587, m) {
		t.Fatalf("README example: %d", got)
	}
}

func TestNewFloat32MultiplierRejects(t *testing.T) {
	for _, m := range []float32{-1, float32(math.NaN()), float32(math.Inf(1))} {
		if _, err := NewFloat32Multiplier(m); err == nil {
			t.Errorf("multiplier %v accepted", m)
		}
	}
}

// TestFma32 checks the single-rounding fused multiply-add against float64 arithmetic on operands
// whose exact result fits float64 (then rounding once to float32 is the correctly rounded FMA), and
// on a case where the separate product would round differently.
func TestFma32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := float32(r.IntN(256))
		y := float32(r.Float64() * 4)
		z := float32(r.Float64()*600 - 300)
		want := float32(float64(x)*float64(y) + float64(z)) // exact in float64: < 53 bits span
		if got := fma32(x, y, z); got != want {
			t.Fatalf("fma32(%v, %v, %v) = %v, want %v", x, y, z, got, want)
		}
	}
	// 1+2^-23 squared is 1 + 2^-22 + 2^-46: the float32 product rounds the 2^-46 away, the FMA with
	// z = -(1+2^-22) keeps it.
	x := float32(1 + math.Ldexp(1, -23))
	if got, want := fma32(x, x, -float32(1+math.Ldexp(1, -22))), float32(math.Ldexp(1, -46)); got != want {
		t.Fatalf("fma32 rounded the product first: %v, want %v", got, want)
	}
}
