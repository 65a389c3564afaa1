package convop

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestElementwiseFloat32 checks the float32 element-wise helpers (AVX2
// where available) against plain Go loops on every length up to 40 and a
// long one, with NaN, -0 and exact zeros in the input.
func TestElementwiseFloat32(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 7))
	same := func(a, b float32) bool {
		return a == b && math.Signbit(float64(a)) == math.Signbit(float64(b)) || a != a && b != b
	}
	for _, n := range append([]int{1000, 1003}, func() []int {
		var s []int
		for i := 0; i <= 40; i++ {
			s = append(s, i)
		}
		return s
	}()...) {
		x := make([]float32, n)
		dy := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
			dy[i] = float32(r.NormFloat64())
			switch r.IntN(8) {
			case 0:
				x[i] = 0
			case 1:
				x[i] = float32(math.Copysign(0, -1))
			case 2:
				x[i] = float32(math.NaN())
			}
		}
		y := make([]float32, n)
		relu32(x, y)
		dx := make([]float32, n)
		reluGrad32(x, dy, dx)
		acc := append([]float32(nil), dy...)
		addTo32(acc, x)
		for i, v := range x {
			wantY := v
			if v < 0 {
				wantY = 0
			}
			if v == 0 {
				wantY = y[i] // either signed zero is a correct max(±0, 0)
			}
			if !same(y[i], wantY) || (v != v) != (y[i] != y[i]) {
				t.Fatalf("n=%d: relu(%g) = %g", n, v, y[i])
			}
			wantD := float32(0)
			if v >= 0 {
				wantD = dy[i]
			}
			if dx[i] != wantD {
				t.Fatalf("n=%d: reluGrad(x=%g, dy=%g) = %g, want %g", n, v, dy[i], dx[i], wantD)
			}
			if wantA := dy[i] + v; !same(acc[i], wantA) {
				t.Fatalf("n=%d: addTo %g + %g = %g", n, dy[i], v, acc[i])
			}
		}
	}
}
