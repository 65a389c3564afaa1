package lmspec

import (
	"math"
	"math/big"
	"testing"
)

// TestRounding: hand-computed ties and non-ties of the rounding helpers (ties away from zero).
func TestRounding(t *testing.T) {
	for _, c := range []struct{ num, den, want int64 }{
		{5, 2, 3}, {-5, 2, -3}, {3, 2, 2}, {-3, 2, -2}, {7, 4, 2}, {-7, 4, -2}, {5, 4, 1}, {-5, 4, -1}, {0, 3, 0}, {1, 3, 0}, {-2, 3, -1},
	} {
		if got := roundDiv64(c.num, c.den); got != c.want {
			t.Errorf("roundDiv64(%d, %d) = %d, want %d", c.num, c.den, got, c.want)
		}
	}
	if got := roundPow2(-3<<14, 15); got != -2 { // -1.5
		t.Errorf("roundPow2(-1.5) = %d", got)
	}
	if got := roundPow2(1<<14, 15); got != 1 { // 0.5
		t.Errorf("roundPow2(0.5) = %d", got)
	}
}

// TestExp2Neg: the Q20 exponential against math.Exp2 (interpolation error below 1e-6 relative
// plus the final rounding: within 1.5 units) and its hand-computed points.
func TestExp2Neg(t *testing.T) {
	for u := int64(0); u < 32<<16; u += 997 {
		got := exp2Neg(big.NewInt(u))
		want := math.Exp2(-float64(u)/65536) * (1 << 20)
		if math.Abs(float64(got)-want) > 1.5 {
			t.Fatalf("exp2Neg(%d) = %d, want %.3f", u, got, want)
		}
	}
	for _, c := range []struct{ u, want int64 }{{0, 1 << 20}, {1 << 16, 1 << 19}, {20 << 16, 1}, {21 << 16, 1}, {22 << 16, 0}, {31 << 16, 0}} {
		if got := exp2Neg(big.NewInt(c.u)); got != c.want {
			t.Errorf("exp2Neg(%d) = %d, want %d", c.u, got, c.want)
		}
	}
	// expArg against d*c*2^16 (the 32-bit mantissa: relative 2^-32, then a floor).
	for _, c := range []float64{1e-9, 0.003, 0.7, 1.5, 1000, 60000} {
		for _, d := range []int64{0, 1, 17, 1 << 20, 1 << 30} {
			got := expArg(d, c)
			want := float64(d) * c * 65536
			if g, _ := new(big.Float).SetInt(got).Float64(); math.Abs(g-want) > want*1e-9+1 {
				t.Errorf("expArg(%d, %g) = %v, want about %.1f", d, c, got, want)
			}
		}
	}
}
