package fakequant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func runCayley(t *testing.T, dt tensor.Dtype, n int, a []float64) []float64 {
	t.Helper()
	g := G.NewGraph()
	an := G.NewMatrix(g, dt, G.WithShape(n, n), G.WithName("A"), G.WithValue(denseFrom(dt, []int{n, n}, a)))
	q, err := Cayley(an)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return valueFloats(q.Value())
}

// TestCayleyHandCase checks the 2x2 case against its closed form: for S = [[0, s], [-s, 0]],
// Q = [[1-s^2, -2s], [2s, 1-s^2]] / (1+s^2), a rotation by the angle 2 atan(s).
func TestCayleyHandCase(t *testing.T) {
	for _, s := range []float64{0, 0.3, -1.7} {
		got := runCayley(t, tensor.Float64, 2, []float64{0.25, 2 * s, 0, -4}) // diagonal and symmetric parts are ignored
		d := 1 + s*s
		want := []float64{(1 - s*s) / d, -2 * s / d, 2 * s / d, (1 - s*s) / d}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-14 {
				t.Fatalf("s=%v: Q = %v, want %v", s, got, want)
			}
		}
	}
}

func TestCayleyOrthogonal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		n := 7
		a := make([]float64, n*n)
		for i := range a {
			a[i] = 2 * rng.NormFloat64()
		}
		q := runCayley(t, dt, n, a)
		tol := 1e-12
		if dt == tensor.Float32 {
			tol = 1e-6
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var d float64
				for k := 0; k < n; k++ {
					d += q[k*n+i] * q[k*n+j]
				}
				if i == j {
					d--
				}
				if math.Abs(d) > tol {
					t.Fatalf("%v: (Q^T Q - I)[%d,%d] = %g", dt, i, j, d)
				}
			}
		}
	}
	if _, err := Cayley(G.NewMatrix(G.NewGraph(), tensor.Float64, G.WithShape(2, 3), G.WithName("x"))); err == nil {
		t.Fatal("2x3 input: no error")
	}
}

// TestCayleyGradient compares the gradient op with central differences over every element.
func TestCayleyGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 5} {
		a := make([]float64, n*n)
		for i := range a {
			a[i] = 0.7 * rng.NormFloat64()
		}
		g := G.NewGraph()
		an := G.NewMatrix(g, tensor.Float64, G.WithShape(n, n), G.WithName("A"), G.WithValue(denseFrom(tensor.Float64, []int{n, n}, a)))
		q, err := Cayley(an)
		if err != nil {
			t.Fatal(err)
		}
		// square Q so the loss is not linear in Q
		q2, err := G.Mul(q, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := gradcheck.Graph(g, q2, []*G.Node{an}, gradcheck.Options{Seed: uint64(n)}); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}
