package quant

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestRoundDiv compares RoundDiv with exact rational rounding (half away from zero) on edge and
// random cases, including the extreme window sums the model limits allow.
func TestRoundDiv(t *testing.T) {
	ref := func(num, den int32) int32 {
		q := new(big.Rat).SetFrac64(int64(num), int64(den))
		half := big.NewRat(1, 2)
		if q.Sign() < 0 {
			q.Sub(q, half)
		} else {
			q.Add(q, half)
		}
		// truncate toward zero
		z := new(big.Int).Quo(q.Num(), q.Denom())
		return int32(z.Int64())
	}
	cases := [][2]int32{{0, 1}, {1, 2}, {-1, 2}, {3, 2}, {-3, 2}, {5, 4}, {-5, 4}, {7, 4}, {-7, 4}, {-128 * 9, 9},
		{math.MinInt32, 1 << 24}, {math.MinInt32, 3}, {math.MinInt32 + 1, 1 << 24}, {127 << 24, 1 << 24}, {math.MaxInt32, 2}}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		den := int32(1 + r.IntN(1<<12))
		cases = append(cases, [2]int32{int32(r.IntN(255*int(den)+1)) - 128*den, den})
	}
	for _, c := range cases {
		if got, want := RoundDiv(c[0], c[1]), ref(c[0], c[1]); got != want {
			t.Errorf("RoundDiv(%d, %d) = %d, want %d", c[0], c[1], got, want)
		}
	}
}
