package graph

import (
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lossNet builds net (float64) plus loss = sum(out * r) for a fixed random r, and the gradient
// nodes of loss with respect to every trainable parameter and the input.
func lossNet(t *testing.T, m *Model, o Options) (*Net, G.VM, *G.Node, map[string]*G.Node, *G.Node) {
	t.Helper()
	n, err := m.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	n.FillMasks(rng)
	fill(n.XVal, rng)
	rs := n.Out.Shape()
	rv := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(rs...))
	fill(rv, rng)
	r := G.NewTensor(n.G, tensor.Float64, rs.Dims(), G.WithShape(rs...), G.WithName("r"), G.WithValue(rv))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(n.Out, r))))
	var wrt G.Nodes
	var names []string
	for _, p := range m.Params() {
		if p.Trainable {
			wrt = append(wrt, n.Params[p.Name])
			names = append(names, p.Name)
		}
	}
	wrt = append(wrt, n.X)
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	gm := map[string]*G.Node{}
	for i, nm := range names {
		gm[nm] = grads[i]
	}
	vm := G.NewTapeMachine(n.G)
	t.Cleanup(func() { vm.Close() })
	return n, vm, loss, gm, grads[len(grads)-1]
}

func fill(d *tensor.Dense, rng *rand.Rand) {
	switch s := d.Data().(type) {
	case []float64:
		for i := range s {
			s[i] = rng.NormFloat64()
		}
	case []float32:
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
	}
}

func run(t *testing.T, vm G.VM, loss *G.Node) float64 {
	t.Helper()
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return loss.Value().Data().(float64)
}

// checkGrad compares analytic gradients with central differences at every coordinate of vals.
func checkGrad(t *testing.T, name string, vals []float64, grad []float64, vm G.VM, loss *G.Node) {
	t.Helper()
	num := gradcheck.Numerical(vals, gradcheck.DefaultEps, func() float64 { return run(t, vm, loss) })
	if err := gradcheck.Compare(name, grad, num, gradcheck.Tolerance{Rel: 1e-5, Abs: 1e-5}); err != nil {
		t.Error(err)
	}
}

func gradModels() map[string]func() *Model {
	return map[string]func() *Model{
		"conv-bn-relu-maxpool-linear": func() *Model {
			m := NewModel("a", []int{2, 6, 6}, tensor.Float64, 1)
			m.Conv2d("c1", Conv{Out: 4, Kernel: 3, Pad: 1, Bias: true})
			m.BatchNorm("bn1", 0, 0)
			m.ReLU("r1")
			m.MaxPool2d("p1", 2, 0, 0)
			m.Flatten("f")
			m.Linear("fc", 3, true)
			return m
		},
		"stride-depthwise-relu6-avgpool-gap-add-bn1d": func() *Model {
			m := NewModel("b", []int{3, 7, 7}, tensor.Float64, 2)
			m.Conv2d("c1", Conv{Out: 3, Kernel: 3, Stride: 2, Pad: 1, Groups: 3, Bias: true})
			m.ReLU6("r6")
			m.Conv2d("c2", Conv{Out: 3, Kernel: 1})
			m.Add("add", "r6", "c2")
			m.AvgPool2d("ap", 2, 1)
			m.GlobalAvgPool("gap")
			m.Dropout("drop", 0.3)
			m.Linear("fc", 4, false)
			m.BatchNorm("bn", 0, 0)
			return m
		},
	}
}

func TestLayerGradientsNumerical(t *testing.T) {
	for name, mk := range gradModels() {
		for _, o := range []Options{{Batch: 3, Train: true}, {Batch: 3}, {Batch: 3, Train: true, FoldBN: true}, {Batch: 3, Train: true, FoldBN: true, FreezeBN: true}} {
			m := mk()
			n, vm, loss, grads, gx := lossNet(t, m, o)
			run(t, vm, loss)
			// copy analytic gradients before the numerical runs overwrite them
			for _, p := range m.Params() {
				if !p.Trainable {
					continue
				}
				g := append([]float64(nil), grads[p.Name].Value().Data().([]float64)...)
				checkGrad(t, name+"/"+p.Name, p.Value.Data().([]float64), g, vm, loss)
			}
			g := append([]float64(nil), gx.Value().Data().([]float64)...)
			checkGrad(t, name+"/input", n.XVal.Data().([]float64), g, vm, loss)
		}
	}
}
