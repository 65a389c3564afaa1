package fakequant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestFWHTMatchesDefinition(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8, 64} {
		// H[i][j] = (-1)^popcount(i&j) in Sylvester order.
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		got := append([]float64(nil), v...)
		FWHT(got)
		for i := 0; i < n; i++ {
			want := 0.0
			for j := 0; j < n; j++ {
				sign := 1.0
				for b := i & j; b != 0; b &= b - 1 {
					sign = -sign
				}
				want += sign * v[j]
			}
			if math.Abs(got[i]-want) > 1e-12*float64(n) {
				t.Fatalf("n=%d: FWHT[%d]=%v want %v", n, i, got[i], want)
			}
		}
	}
}

// TestHadamardForwardAndGradient checks y = x R against the dense matrix R = D H / sqrt(n), that R is
// orthogonal, and the gradient against central differences of sum(w .* (x R)).
func TestHadamardForwardAndGradient(t *testing.T) {
	for _, dt := range dtypes {
		const rows, n = 3, 16
		rng := rand.New(rand.NewPCG(9, 9))
		xv := make([]float64, rows*n)
		wv := make([]float64, rows*n)
		for i := range xv {
			xv[i], wv[i] = rng.NormFloat64(), rng.NormFloat64()
		}
		g := G.NewGraph()
		x := G.NewMatrix(g, dt, G.WithShape(rows, n), G.WithName("x"), G.WithValue(denseOf(dt, []int{rows, n}, xv)))
		w := G.NewMatrix(g, dt, G.WithShape(rows, n), G.WithName("w"), G.WithValue(denseOf(dt, []int{rows, n}, wv)))
		h, err := Hadamard(x, 77)
		if err != nil {
			t.Fatal(err)
		}
		cost := G.Must(G.Sum(G.Must(G.HadamardProd(h.Out, w))))
		if _, err := G.Grad(cost, x); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g, G.BindDualValues(x))
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		R := h.Matrix()
		// orthogonality of the dense matrix
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				d := 0.0
				for k := 0; k < n; k++ {
					d += R[k*n+i] * R[k*n+j]
				}
				if i == j {
					d--
				}
				if math.Abs(d) > 1e-12 {
					t.Fatalf("R^T R - I [%d,%d] = %v", i, j, d)
				}
			}
		}
		xs, ws := floats(denseOf(dt, []int{rows, n}, xv)), floats(denseOf(dt, []int{rows, n}, wv))
		tol := 1e-12
		if dt == tensor.Float32 {
			tol = 1e-5
		}
		y := floats(h.Out.Value())
		for r := 0; r < rows; r++ {
			for j := 0; j < n; j++ {
				want := 0.0
				for i := 0; i < n; i++ {
					want += xs[r*n+i] * R[i*n+j]
				}
				if math.Abs(y[r*n+j]-want) > tol {
					t.Fatalf("%v: y[%d,%d]=%v want %v", dt, r, j, y[r*n+j], want)
				}
			}
		}
		f := func() float64 {
			c := 0.0
			for r := 0; r < rows; r++ {
				for j := 0; j < n; j++ {
					yj := 0.0
					for i := 0; i < n; i++ {
						yj += xs[r*n+i] * R[i*n+j]
					}
					c += ws[r*n+j] * yj
				}
			}
			return c
		}
		num := gradcheck.Numerical(xs, 1e-6, f)
		gx := grad(t, x)
		for i := range num {
			if math.Abs(gx[i]-num[i]) > 1e-6+tol*10 {
				t.Fatalf("%v: dx[%d]=%v numeric %v", dt, i, gx[i], num[i])
			}
		}
		if _, err := Hadamard(G.NewMatrix(g, dt, G.WithShape(2, 12), G.WithName("bad")), 1); err == nil {
			t.Fatal("non power-of-two size accepted")
		}
	}
}

// TestRotationGradient checks dL/dR of y = x R (learnable R) against central differences.
func TestRotationGradient(t *testing.T) {
	for _, dt := range dtypes {
		const m, n = 5, 8
		rng := rand.New(rand.NewPCG(4, 4))
		xv, wv := make([]float64, m*n), make([]float64, m*n)
		for i := range xv {
			xv[i], wv[i] = rng.NormFloat64(), rng.NormFloat64()
		}
		g := G.NewGraph()
		x := G.NewMatrix(g, dt, G.WithShape(m, n), G.WithName("x"), G.WithValue(denseOf(dt, []int{m, n}, xv)))
		w := G.NewMatrix(g, dt, G.WithShape(m, n), G.WithName("w"), G.WithValue(denseOf(dt, []int{m, n}, wv)))
		rot, err := NewRotation(g, dt, n, "R", 3)
		if err != nil {
			t.Fatal(err)
		}
		y, err := rot.Apply(x)
		if err != nil {
			t.Fatal(err)
		}
		cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, w))))
		if _, err := G.Grad(cost, rot.R); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g, G.BindDualValues(rot.R))
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		R := rot.Matrix()
		xs, ws := floats(x.Value()), floats(w.Value())
		f := func() float64 {
			c := 0.0
			for r := 0; r < m; r++ {
				for j := 0; j < n; j++ {
					yj := 0.0
					for i := 0; i < n; i++ {
						yj += xs[r*n+i] * R[i*n+j]
					}
					c += ws[r*n+j] * yj
				}
			}
			return c
		}
		num := gradcheck.Numerical(R, 1e-6, f)
		gr := grad(t, rot.R)
		tol := 1e-6
		if dt == tensor.Float32 {
			tol = 1e-4
		}
		for i := range num {
			if math.Abs(gr[i]-num[i]) > tol*(1+math.Abs(num[i])) {
				t.Fatalf("%v: dR[%d]=%v numeric %v", dt, i, gr[i], num[i])
			}
		}
	}
}

// TestCayleySGDKeepsOrthogonality runs 500 Cayley steps on a 64x64 float64 rotation that learns to
// map x onto x Q for a random orthogonal target Q: R stays orthogonal (max|R^T R - I| < 1e-5) and the
// loss falls.
func TestCayleySGDKeepsOrthogonality(t *testing.T) {
	for _, dt := range dtypes {
		t.Run(dt.String(), func(t *testing.T) { cayleyRun(t, dt) })
	}
}

func cayleyRun(t *testing.T, dt tensor.Dtype) {
	const m, n = 64, 64
	rng := rand.New(rand.NewPCG(12, 34))
	xv := make([]float64, m*n)
	for i := range xv {
		xv[i] = rng.NormFloat64()
	}
	// Target rotation: a Hadamard rotation with other signs, times a permutation.
	q := hadamardMatrix(RandomSigns(n, 999))
	perm := rng.Perm(n)
	target := make([]float64, m*n)
	for r := 0; r < m; r++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for i := 0; i < n; i++ {
				s += xv[r*n+i] * q[i*n+perm[j]]
			}
			target[r*n+j] = s
		}
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, dt, G.WithShape(m, n), G.WithName("x"), G.WithValue(denseOf(dt, []int{m, n}, xv)))
	tg := G.NewMatrix(g, dt, G.WithShape(m, n), G.WithName("t"), G.WithValue(denseOf(dt, []int{m, n}, target)))
	rot, err := NewRotation(g, dt, n, "R", 1)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := rot.Apply(x)
	loss := G.Must(G.Mean(G.Must(G.Square(G.Must(G.Sub(y, tg))))))
	if _, err := G.Grad(loss, rot.R); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(rot.R))
	opt := CayleySGD{LR: 2}
	var first, last float64
	for i := 0; i < 500; i++ {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		switch v := loss.Value().Data().(type) {
		case float64:
			last = v
		case float32:
			last = float64(v)
		}
		if i == 0 {
			first = last
		}
		if err := opt.Step(rot); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
	}
	e := rot.OrthogonalityError()
	t.Logf("%v: loss %.4f -> %.4f, max|R^T R - I| = %.3g", dt, first, last, e)
	if !(e < 1e-5) {
		t.Fatalf("orthogonality error %v after 500 Cayley steps", e)
	}
	if !(last < first/2) {
		t.Fatalf("rotation did not learn: loss %v -> %v", first, last)
	}
}

// TestRotationApplyRank3 checks x R on a [2, 3, n] input against the dense product.
func TestRotationApplyRank3(t *testing.T) {
	const n = 4
	g := G.NewGraph()
	xv := make([]float64, 2*3*n)
	for i := range xv {
		xv[i] = float64(i%5) - 2
	}
	x := G.NewTensor(g, tensor.Float64, 3, G.WithShape(2, 3, n), G.WithName("x"), G.WithValue(denseOf(tensor.Float64, []int{2, 3, n}, xv)))
	rot, err := NewRotation(g, tensor.Float64, n, "R", 5)
	if err != nil {
		t.Fatal(err)
	}
	y, err := rot.Apply(x)
	if err != nil {
		t.Fatal(err)
	}
	cost := G.Must(G.Sum(y))
	if _, err := G.Grad(cost, rot.R); err != nil {
		t.Fatal(err)
	}
	if err := G.NewTapeMachine(g, G.BindDualValues(rot.R)).RunAll(); err != nil {
		t.Fatal(err)
	}
	if !y.Shape().Eq(tensor.Shape{2, 3, n}) {
		t.Fatalf("shape %v", y.Shape())
	}
	R := rot.Matrix()
	got := floats(y.Value())
	for r := 0; r < 6; r++ {
		for j := 0; j < n; j++ {
			want := 0.0
			for i := 0; i < n; i++ {
				want += xv[r*n+i] * R[i*n+j]
			}
			if math.Abs(got[r*n+j]-want) > 1e-12 {
				t.Fatalf("y[%d,%d]=%v want %v", r, j, got[r*n+j], want)
			}
		}
	}
}
