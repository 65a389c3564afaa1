package qat

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LinearModel is what the weight-only LLM methods (GPTQ, SmoothQuant) need from a model: its
// linear layers (weight "<Name>.weight" [Out, In], y = x W^T, and the activation site that feeds
// each) and its parameters by name. *graph.LM implements it.
type LinearModel interface {
	Linears() []graph.LMLinear
	Param(name string) *graph.Param
}

var _ LinearModel = (*graph.LM)(nil)

// LinearInputStats accumulates calibration statistics of the activations that feed linear layers,
// per activation site (the site names of LinearModel.Linears): the per-channel maximum absolute
// value max|X_j| that SmoothQuant needs and, when Gram is set, the Gram matrix X^T X [In, In]
// from which GPTQ's Hessian H = 2 X^T X / N is formed. X is the activation as a matrix of N rows
// (tokens) by In channels.
type LinearInputStats struct {
	// Gram selects whether Observe accumulates X^T X (O(N In^2) per site and batch).
	Gram bool
	// AbsMax is max|X_j| per site, [In].
	AbsMax map[string][]float64
	// XtX is X^T X per site, [In, In] row-major (with Gram).
	XtX map[string][]float64
	// Rows is the number of rows N accumulated per site.
	Rows map[string]int
}

// NewLinearInputStats returns empty statistics; gram selects the Gram matrices (GPTQ).
func NewLinearInputStats(gram bool) *LinearInputStats {
	return &LinearInputStats{Gram: gram, AbsMax: map[string][]float64{}, XtX: map[string][]float64{}, Rows: map[string]int{}}
}

// Observe adds the current values of the activation nodes acts (site name -> node of shape
// [N, In], for example graph.LMNet.Acts after a run). Run the graph with a machine that keeps
// these values (G.TraceExec with the nodes in its watch list, as CollectLMStats does): Gorgonia's
// tape machine may reuse the buffer of a node with no readers left. A node without a value, of
// the wrong rank, or a non-finite value is an error.
func (s *LinearInputStats) Observe(acts map[string]*G.Node) error {
	for _, site := range slices.Sorted(maps.Keys(acts)) {
		node := acts[site]
		v, ok := node.Value().(tensor.Tensor)
		if !ok || v == nil {
			return fmt.Errorf("qat: linear input statistics: site %s has no value (run the graph first)", site)
		}
		sh := v.Shape()
		if sh.Dims() != 2 {
			return fmt.Errorf("qat: linear input statistics: site %s has shape %v (want [N, In])", site, sh)
		}
		var x []float64
		switch d := v.Data().(type) {
		case []float32:
			x = make([]float64, len(d))
			for i, f := range d {
				x[i] = float64(f)
			}
		case []float64:
			x = d
		default:
			return fmt.Errorf("qat: linear input statistics: site %s has dtype %v", site, v.Dtype())
		}
		if err := s.ObserveRows(site, x, sh[1]); err != nil {
			return err
		}
	}
	return nil
}

// ObserveRows adds the rows of x ([N, cols] row-major) to the statistics of site.
func (s *LinearInputStats) ObserveRows(site string, x []float64, cols int) error {
	if cols < 1 || len(x)%cols != 0 {
		return fmt.Errorf("qat: linear input statistics: site %s: %d values in rows of %d", site, len(x), cols)
	}
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: linear input statistics: site %s element %d is %v", ErrNonFinite, site, i, v)
		}
	}
	mx := s.AbsMax[site]
	if mx == nil {
		mx = make([]float64, cols)
		s.AbsMax[site] = mx
	} else if len(mx) != cols {
		return fmt.Errorf("qat: linear input statistics: site %s has %d channels, earlier batches had %d", site, cols, len(mx))
	}
	for i, v := range x {
		mx[i%cols] = max(mx[i%cols], math.Abs(v))
	}
	n := len(x) / cols
	s.Rows[site] += n
	if !s.Gram {
		return nil
	}
	g := s.XtX[site]
	if g == nil {
		g = make([]float64, cols*cols)
		s.XtX[site] = g
	}
	for r := 0; r < n; r++ {
		row := x[r*cols : (r+1)*cols]
		for i, a := range row {
			if a == 0 {
				continue
			}
			gi := g[i*cols : (i+1)*cols]
			for j, b := range row {
				gi[j] += a * b
			}
		}
	}
	return nil
}

// Hessian returns GPTQ's Hessian of the layer-wise loss for the linears reading site,
// H = 2 X^T X / N (Frantar et al. 2022, section 3; the reference averages over samples the same
// way), [In, In] row-major.
func (s *LinearInputStats) Hessian(site string) ([]float64, error) {
	g, ok := s.XtX[site]
	if !ok || s.Rows[site] == 0 {
		return nil, fmt.Errorf("qat: no Gram matrix for site %s (collect statistics with Gram set on calibration batches)", site)
	}
	h := make([]float64, len(g))
	k := 2 / float64(s.Rows[site])
	for i, v := range g {
		h[i] = v * k
	}
	return h, nil
}

// CollectLMStats runs the float graph of lm built with o (o.Quant should be nil: statistics of
// the float activations) over n calibration batches (batch(i) returns the token ids and targets
// of batch i, as for graph.LMNet.SetBatch) and returns the statistics of every linear input site.
func CollectLMStats(lm *graph.LM, o graph.LMOptions, batch func(i int) (ids, targets []int), n int, gram bool) (*LinearInputStats, error) {
	net, err := lm.Build(o)
	if err != nil {
		return nil, err
	}
	watch := make([]any, 0, len(net.Acts))
	for _, site := range slices.Sorted(maps.Keys(net.Acts)) {
		watch = append(watch, net.Acts[site])
	}
	vm := G.NewTapeMachine(net.G, G.TraceExec(), G.WithWatchlist(watch...))
	defer vm.Close()
	s := NewLinearInputStats(gram)
	for i := 0; i < n; i++ {
		ids, tg := batch(i)
		if err := net.SetBatch(ids, tg); err != nil {
			return nil, fmt.Errorf("qat: calibration batch %d: %w", i, opError(err))
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			return nil, fmt.Errorf("qat: calibration batch %d: %w", i, opError(err))
		}
		if err := s.Observe(net.Acts); err != nil {
			return nil, fmt.Errorf("qat: calibration batch %d: %w", i, opError(err))
		}
	}
	return s, nil
}

// paramFloat64s returns a float64 copy of a float32 or float64 parameter.
func paramFloat64s(p *graph.Param) ([]float64, error) {
	switch d := p.Value.Data().(type) {
	case []float32:
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x)
		}
		return v, nil
	case []float64:
		return slices.Clone(d), nil
	}
	return nil, fmt.Errorf("qat: parameter %s has dtype %v (want float32 or float64)", p.Name, p.Value.Dtype())
}

// setParamFloat64s stores v into a float32 or float64 parameter of the same size.
func setParamFloat64s(p *graph.Param, v []float64) error {
	switch d := p.Value.Data().(type) {
	case []float32:
		if len(d) != len(v) {
			return fmt.Errorf("qat: parameter %s: %d values for %d", p.Name, len(v), len(d))
		}
		for i, x := range v {
			d[i] = float32(x)
		}
	case []float64:
		if len(d) != len(v) {
			return fmt.Errorf("qat: parameter %s: %d values for %d", p.Name, len(v), len(d))
		}
		copy(d, v)
	default:
		return fmt.Errorf("qat: parameter %s has dtype %v (want float32 or float64)", p.Name, p.Value.Dtype())
	}
	return nil
}
