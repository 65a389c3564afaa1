package export

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// Folded holds the frozen float parameters of one conv/linear group after BatchNorm folding, in
// the training layout: Weight is OIHW [O, I/groups, KH, KW] for a convolution and [Out, In] for
// a linear layer (row-major), Bias has one value per output channel (nil when the group has
// neither a bias nor a BatchNorm).
type Folded struct {
	Op     string
	Weight []float32
	Shape  []int
	Bias   []float32
}

// Fold freezes the parameters of the conv/linear group g of m, folding its BatchNorm (if any):
//
//	sigma = sqrt(running_var + eps), a = gamma/sigma
//	W'    = W * a[o]                 (per output channel o)
//	b'    = beta + (b - mean) * a    (b = 0 without a conv/linear bias)
//
// The float32 operations and their order are those of graph's simulated folding (graph.Options
// FoldBN with running statistics), so W' is bit-identical to the value the weight fake-quantizer
// of a prepared model sees, and the exported integer weights equal the fake-quantized ones.
func Fold(m *graph.Model, g graph.Group) (*Folded, error) {
	if !g.Weighted() {
		return nil, fmt.Errorf("export: group %q (%s) has no weights to fold", g.Op, g.Kind)
	}
	if m.Dtype != tensor.Float32 {
		return nil, fmt.Errorf("export: model %q is %v; export supports float32 models", m.Name, m.Dtype)
	}
	l := m.Layer(g.Op)
	wp := m.LayerParam(g.Op, graph.RoleWeight)
	if l == nil || wp == nil {
		return nil, fmt.Errorf("export: group %q has no weight parameter", g.Op)
	}
	w := append([]float32(nil), wp.Value.Data().([]float32)...)
	f := &Folded{Op: g.Op, Weight: w, Shape: wp.Value.Shape().Clone()}
	out := f.Shape[0]
	var bias []float32
	if l.Bias {
		bp := m.LayerParam(g.Op, graph.RoleBias)
		if bp == nil {
			return nil, fmt.Errorf("export: layer %q declares a bias but has no bias parameter", g.Op)
		}
		bias = bp.Value.Data().([]float32)
	}
	if g.BN == "" {
		if bias != nil {
			f.Bias = append([]float32(nil), bias...)
		}
		return f, nil
	}
	bn := m.Layer(g.BN)
	get := func(r graph.Role) ([]float32, error) {
		p := m.LayerParam(g.BN, r)
		if p == nil {
			return nil, fmt.Errorf("export: BatchNorm %q has no %s", g.BN, r)
		}
		v := p.Value.Data().([]float32)
		if len(v) != out {
			return nil, fmt.Errorf("export: BatchNorm %q %s has %d channels, layer %q has %d", g.BN, r, len(v), g.Op, out)
		}
		return v, nil
	}
	gamma, err := get(graph.RoleGamma)
	if err != nil {
		return nil, err
	}
	beta, err := get(graph.RoleBeta)
	if err != nil {
		return nil, err
	}
	mean, err := get(graph.RoleRunningMean)
	if err != nil {
		return nil, err
	}
	rv, err := get(graph.RoleRunningVar)
	if err != nil {
		return nil, err
	}
	eps := float32(bn.Eps)
	a := make([]float32, out)
	for c := range a {
		a[c] = bnScale(gamma[c], rv[c], eps)
		if math.IsNaN(float64(a[c])) || math.IsInf(float64(a[c]), 0) {
			return nil, fmt.Errorf("export: BatchNorm %q channel %d: gamma/sqrt(var+eps) = %v is not finite", g.BN, c, a[c])
		}
	}
	per := len(w) / out
	for o := 0; o < out; o++ {
		for i := o * per; i < (o+1)*per; i++ {
			w[i] *= a[o]
		}
	}
	f.Bias = make([]float32, out)
	for c := range f.Bias {
		shift := -mean[c]
		if bias != nil {
			shift += bias[c]
		}
		f.Bias[c] = beta[c] + shift*a[c]
	}
	return f, nil
}

// bnScale returns a BatchNorm channel's scale gamma/sqrt(runningVar+eps) in the float32
// operations of graph's simulated folding (Fold and a standalone BatchNorm's lowering share it).
func bnScale(gamma, runningVar, eps float32) float32 {
	return gamma / float32(math.Sqrt(float64(runningVar+eps)))
}
