package fakequant

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// harness is one fake-quant node in a graph with cost = sum(w .* Out), w fixed random weights, so
// that dCost/dOut = w.
type harness struct {
	g    *G.ExprGraph
	x    *G.Node
	q    *Quantizer
	w    []float64
	cost *G.Node
	vm   G.VM
	dt   tensor.Dtype
}

func denseOf(dt tensor.Dtype, shape []int, v []float64) *tensor.Dense {
	if dt == tensor.Float32 {
		f := make([]float32, len(v))
		for i := range v {
			f[i] = float32(v[i])
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), v...)))
}

func floats(v G.Value) []float64 { return valueFloats(v) }

// newHarness builds the graph. x is a learnable leaf so that its gradient is bound.
func newHarness(t testing.TB, dt tensor.Dtype, shape []int, xv []float64, cfg Config, seed uint64) *harness {
	t.Helper()
	g := G.NewGraph()
	x := G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName("x"), G.WithValue(denseOf(dt, shape, xv)))
	q, err := New(g, x, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	w := make([]float64, len(xv))
	for i := range w {
		w[i] = rng.Float64()*2 - 1
	}
	wn := G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName("w"), G.WithValue(denseOf(dt, shape, w)))
	prod, err := G.HadamardProd(q.Out, wn)
	if err != nil {
		t.Fatal(err)
	}
	cost, err := G.Sum(prod)
	if err != nil {
		t.Fatal(err)
	}
	wrt := append(G.Nodes{x}, q.Learnables()...)
	if _, err := G.Grad(cost, wrt...); err != nil {
		t.Fatal(err)
	}
	return &harness{g: g, x: x, q: q, w: w, cost: cost, vm: G.NewTapeMachine(g, G.BindDualValues(wrt...)), dt: dt}
}

func (h *harness) run(t testing.TB) {
	t.Helper()
	h.vm.Reset()
	if err := h.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
}

func grad(t testing.TB, n *G.Node) []float64 {
	t.Helper()
	v, err := n.Grad()
	if err != nil {
		t.Fatal(err)
	}
	return floats(v)
}

// zeroGrad clears the accumulated gradient of n (TapeMachine accumulates across runs).
func zeroGrad(t testing.TB, n *G.Node) {
	v, err := n.Grad()
	if err != nil {
		t.Fatal(err)
	}
	if z, ok := v.(tensor.Tensor); ok {
		z.Zero()
	}
}
