package qat

import (
	"slices"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
)

// The prepared model is the single owner of quantizer state: a calibration graph's observations
// are in Prepared.Params at once (no Sync), an evaluation graph built later quantizes with exactly
// those parameters, and running it on other data leaves the activation ranges unchanged.
func TestPreparedOwnsQuantizerState(t *testing.T) {
	m := tinyModel(5)
	p, err := Prepare(m, W8A8())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runObservers(p, randomSet{n: 32}, 2, 16, 1); err != nil {
		t.Fatal(err)
	}
	before := map[string][]float64{}
	for _, s := range p.Sites {
		if _, err := p.Params(s.Name); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if s.Kind == graph.SiteActivation {
			lo, hi, _ := p.state[s.Name].fq.Observed()
			before[s.Name] = append(lo, hi...)
		}
	}
	nq := p.EvalQuantizer()
	n, err := m.Build(graph.Options{Batch: 8, Quant: nq, FoldBN: true, FreezeBN: true})
	if err != nil {
		t.Fatal(err)
	}
	x := n.XVal.Data().([]float32)
	for i := range x {
		x[i] = float32(i%13) * 3 // far outside the calibration data's range
	}
	vm := newVM(n)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		want, err := p.Params(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := nq.Qs[s.Name].Params()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want.Params) {
			t.Errorf("%s: evaluation graph uses %v, the owner says %v", s.Name, got, want.Params)
		}
		if s.Kind == graph.SiteActivation {
			lo, hi, _ := p.state[s.Name].fq.Observed()
			if !slices.Equal(append(lo, hi...), before[s.Name]) {
				t.Errorf("%s: evaluation run moved the range from %v to %v %v", s.Name, before[s.Name], lo, hi)
			}
		}
	}
	if _, err := p.Params("nope"); err == nil {
		t.Error("unknown site: no error")
	}
}

// SetParams fixes a weight site's parameters: a graph built afterwards quantizes with exactly
// them, calibration does not move them, and bad input is refused without changing the state.
func TestPreparedSetParams(t *testing.T) {
	m := tinyModel(6)
	p, err := Prepare(m, W8A8())
	if err != nil {
		t.Fatal(err)
	}
	k := m.LayerParam("conv", graph.RoleWeight).Value.Shape()[0]
	ps := make([]quant.Params, k)
	for i := range ps {
		ps[i] = quant.Params{Scale: 0.001 * float32(i+1)}
	}
	if err := p.SetParams("conv.weight", ps[:k-1]); err == nil {
		t.Error("wrong count: no error")
	}
	if err := p.SetParams("conv.weight", []quant.Params{{Scale: 0.1, ZeroPoint: 3}}); err == nil {
		t.Error("zero point on a symmetric site: no error")
	}
	if err := p.SetParams("nope", ps); err == nil {
		t.Error("unknown site: no error")
	}
	if err := p.SetParams("conv.weight", ps); err != nil {
		t.Fatal(err)
	}
	nq, err := runObservers(p, randomSet{n: 16}, 1, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := nq.Qs["conv.weight"].Params()
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := p.Params("conv.weight")
	if !slices.Equal(got, ps) || !slices.Equal(sp.Params, ps) {
		t.Errorf("graph uses %v, owner says %v, want %v", got, sp.Params, ps)
	}
	lsq, _ := Prepare(m, W4A4LSQ())
	if err := lsq.SetParams("conv.weight", ps); err == nil {
		t.Error("learned site: no error")
	}
}
