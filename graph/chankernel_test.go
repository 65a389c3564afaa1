package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// The per-channel kernels (unrolled, four accumulators) against a direct per-element reference, for every
// kind, both axes and inner sizes that exercise the unrolled loop and its tails.
func TestChanKernelMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, shape := range []tensor.Shape{{2, 3, 1}, {2, 3, 3}, {3, 2, 4}, {2, 5, 7}, {1, 4, 13}, {4, 3}} {
		for axis := range 2 {
			full := shape.TotalSize()
			C := shape[axis]
			outer, inner := 1, 1
			for i, d := range shape {
				if i < axis {
					outer *= d
				} else if i > axis {
					inner *= d
				}
			}
			x, y := make([]float64, full), make([]float64, full)
			a, b := make([]float64, C), make([]float64, C)
			for i := range x {
				x[i], y[i] = rng.NormFloat64(), rng.NormFloat64()
			}
			for i := range a {
				a[i], b[i] = rng.NormFloat64(), rng.NormFloat64()
			}
			ch := func(i int) int { return i / inner % C }
			for _, tc := range []struct {
				op  floatKernelOp
				in  [][]float64
				ref func() []float64
			}{
				{newChanAffine(axis, shape), [][]float64{x, a, b}, func() []float64 {
					r := make([]float64, full)
					for i := range r {
						r[i] = x[i]*a[ch(i)] + b[ch(i)]
					}
					return r
				}},
				{newChanScale(axis, shape), [][]float64{x, a}, func() []float64 {
					r := make([]float64, full)
					for i := range r {
						r[i] = x[i] * a[ch(i)]
					}
					return r
				}},
				{newChanShift(axis, shape), [][]float64{x, b}, func() []float64 {
					r := make([]float64, full)
					for i := range r {
						r[i] = x[i] + b[ch(i)]
					}
					return r
				}},
				{newChanSum(axis, shape), [][]float64{x}, func() []float64 {
					r := make([]float64, C)
					for i := range x {
						r[ch(i)] += x[i]
					}
					return r
				}},
				{newChanDot(axis, shape), [][]float64{x, y}, func() []float64 {
					r := make([]float64, C)
					for i := range x {
						r[ch(i)] += x[i] * y[i]
					}
					return r
				}},
				{newChanBcast(axis, shape), [][]float64{a}, func() []float64 {
					r := make([]float64, full)
					for i := range r {
						r[i] = a[ch(i)]
					}
					return r
				}},
			} {
				op := tc.op
				want := tc.ref()
				got := make([]float64, len(want))
				for i := range got {
					got[i] = math.NaN() // every element must be written
				}
				if err := op.kernel64(got, tc.in); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
						t.Fatalf("%v outer %d inner %d: [%d] = %v, want %v", op, outer, inner, i, got[i], want[i])
					}
				}
			}
		}
	}
}
