package qat

import (
	"slices"
	"testing"

	"github.com/qatgo/qatgo/graph"
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
