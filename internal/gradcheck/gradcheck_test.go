package gradcheck

import (
	"fmt"
	"hash"
	"math"
	"strings"
	"testing"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestNumericalMatchesCalculus(t *testing.T) {
	v := []float64{-2, -0.5, 0, 0.3, 1.5, 4}
	orig := append([]float64(nil), v...)
	f := func() float64 { // sum v^3 + sin(v)
		s := 0.0
		for _, x := range v {
			s += x*x*x + math.Sin(x)
		}
		return s
	}
	num := Numerical(v, DefaultEps, f)
	want := make([]float64, len(v))
	for i, x := range v {
		want[i] = 3*x*x + math.Cos(x)
	}
	if err := Compare("cubic", num, want, Tolerance{Rel: 1e-6, Abs: 1e-6}); err != nil {
		t.Error(err)
	}
	for i := range v {
		if v[i] != orig[i] {
			t.Fatalf("v[%d] changed to %v", i, v[i])
		}
	}
	at := NumericalAt(v, []int{4, 1}, DefaultEps, f)
	if at[0] != num[4] || at[1] != num[1] {
		t.Errorf("NumericalAt %v, Numerical %v %v", at, num[4], num[1])
	}
}

func TestCompare(t *testing.T) {
	tol := Tolerance{Rel: 1e-3, Abs: 1e-6}
	for _, tc := range []struct {
		a, n []float64
		bad  int
	}{
		{[]float64{1, 2, 3}, []float64{1, 2, 3}, 0},
		{[]float64{1.0009, 0}, []float64{1, 5e-7}, 0},
		{[]float64{1.002, 0}, []float64{1, 0}, 1},
		{[]float64{math.NaN(), 1}, []float64{1, 2}, 2},
	} {
		err := Compare("x", tc.a, tc.n, tol)
		if (err != nil) != (tc.bad > 0) {
			t.Errorf("Compare(%v, %v) = %v", tc.a, tc.n, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", tc.bad, len(tc.n))) {
			t.Errorf("Compare(%v, %v) = %v, want %d bad", tc.a, tc.n, err, tc.bad)
		}
	}
	if Compare("x", []float64{1}, []float64{1, 2}, tol) == nil {
		t.Error("length mismatch accepted")
	}
}

func TestSample(t *testing.T) {
	for _, tc := range []struct {
		size, n int
		want    []int
	}{
		{3, 5, []int{0, 1, 2}},
		{10, 4, []int{0, 3, 6, 9}},
		{101, 5, []int{0, 25, 50, 75, 100}},
		{10, 2, []int{0, 9}},
		{10, 1, []int{0}},
		{10, 0, []int{}},
		{0, 1, []int{}},
	} {
		if got := Sample(tc.size, tc.n); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Sample(%d, %d) = %v, want %v", tc.size, tc.n, got, tc.want)
		}
	}
}

func input(g *G.ExprGraph, name string, vals []float64, shape ...int) *G.Node {
	v := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), vals...)))
	return G.NewTensor(g, tensor.Float64, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(v))
}

func TestGraphAcceptsCorrectGradient(t *testing.T) {
	g := G.NewGraph()
	a := input(g, "a", []float64{0.1, -0.4, 0.7, 1.2, -0.9, 0.3}, 2, 3)
	b := input(g, "b", []float64{0.5, -1.1, 0.2, 0.8, -0.6, 1.4}, 3, 2)
	out := G.Must(G.Tanh(G.Must(G.Mul(a, b))))
	if err := Graph(g, out, []*G.Node{a, b}, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := a.Value().Data().([]float64)[2]; got != 0.7 {
		t.Fatalf("a[2] left at %v", got)
	}
}

// doubleOp is x -> 2x with a deliberately wrong gradient (x's gradient is not doubled).
type doubleOp struct{}

func (doubleOp) Arity() int { return 1 }
func (doubleOp) Type() hm.Type {
	a := G.TensorType{Dims: 1, Of: hm.TypeVariable('a')}
	return hm.NewFnType(a, a)
}
func (doubleOp) InferShape(s ...G.DimSizer) (tensor.Shape, error) { return s[0].(tensor.Shape), nil }
func (doubleOp) ReturnsPtr() bool                                 { return false }
func (doubleOp) CallsExtern() bool                                { return false }
func (doubleOp) OverwritesInput() int                             { return -1 }
func (doubleOp) String() string                                   { return "double" }
func (doubleOp) WriteHash(h hash.Hash)                            { h.Write([]byte("double")) }
func (doubleOp) Hashcode() uint32                                 { return 7 }
func (doubleOp) Do(v ...G.Value) (G.Value, error) {
	x := v[0].(*tensor.Dense)
	d := x.Data().([]float64)
	out := make([]float64, len(d))
	for i, e := range d {
		out[i] = 2 * e
	}
	return tensor.New(tensor.WithShape(x.Shape().Clone()...), tensor.WithBacking(out)), nil
}
func (doubleOp) DiffWRT(int) []bool { return []bool{true} }
func (doubleOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad}, nil
}

func TestGraphRejectsWrongGradient(t *testing.T) {
	g := G.NewGraph()
	x := input(g, "x", []float64{0.5, -1, 2}, 3)
	out, err := G.ApplyOp(doubleOp{}, x)
	if err != nil {
		t.Fatal(err)
	}
	err = Graph(g, out, []*G.Node{x}, Options{})
	if err == nil || !strings.Contains(err.Error(), "3 of 3") {
		t.Fatalf("wrong gradient not reported: %v", err)
	}
}
