package quant

import (
	"math"
	"math/big"
	"testing"
)

// TestBiasScale compares BiasScale with the exact product of the two scales rounded once to
// float32 (big.Float), including a subnormal product and one that overflows float32.
func TestBiasScale(t *testing.T) {
	cases := []struct{ in, w float32 }{
		{0.1, 0.3},
		{1.0 / 255, 0.0123},
		{0.02, 0.001},
		{1, 1},
		{MinScale, MinScale},
		{3.4e38, 0.5},
		{3.4e38, 2},
		{1e-20, 1e-20},
		{math.Nextafter32(1, 2), math.Nextafter32(1, 2)},
	}
	for _, c := range cases {
		exact := new(big.Float).SetPrec(200).Mul(big.NewFloat(float64(c.in)), big.NewFloat(float64(c.w)))
		want, _ := exact.Float32()
		if got := BiasScale(c.in, c.w); got != want {
			t.Errorf("BiasScale(%g, %g) = %g, want %g", c.in, c.w, got, want)
		}
	}
}
