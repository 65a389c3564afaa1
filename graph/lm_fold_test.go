package graph

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// TestLMChannelFold scales every activation site's channels by random s (reader columns * s,
// producer / s, as ChannelFold names it) and checks that the logits do not change.
func TestLMChannelFold(t *testing.T) {
	m, err := NewLM("lm", tinyLMConfig(), tensor.Float64, 3)
	if err != nil {
		t.Fatal(err)
	}
	ids := randomTokens(rand.New(rand.NewPCG(3, 3)), 8, 7)
	before := logitsOf(t, m, LMOptions{Batch: 2}, ids)
	rng := rand.New(rand.NewPCG(4, 4))
	done := map[string]bool{}
	for _, l := range m.Linears() {
		if done[l.Input] {
			continue
		}
		done[l.Input] = true
		f, err := m.ChannelFold(l.Input)
		if err != nil {
			t.Fatal(err)
		}
		if (f.Gain == "") == (f.Rows == "") {
			t.Fatalf("%s: fold %+v names not exactly one producer", l.Input, f)
		}
		s := make([]float64, l.In)
		for j := range s {
			s[j] = 0.25 + 3*rng.Float64()
		}
		for _, r := range m.Linears() {
			if r.Input == l.Input {
				w := m.Param(r.Name + ".weight").Value.Data().([]float64)
				for i := range w {
					w[i] *= s[i%r.In]
				}
			}
		}
		if f.Gain != "" {
			g := m.Param(f.Gain).Value.Data().([]float64)
			for j := range g {
				g[j] /= s[j]
			}
		} else {
			p := m.Param(f.Rows)
			cols := p.Value.Shape()[1]
			w := p.Value.Data().([]float64)
			for i := range w {
				w[i] /= s[i/cols]
			}
		}
	}
	after := logitsOf(t, m, LMOptions{Batch: 2}, ids)
	if d := maxDiff(before, after); d > 1e-9 {
		t.Fatalf("folding channel scales changed the logits by %g", d)
	}
	if _, err := m.ChannelFold("nope"); err == nil {
		t.Fatal("unknown site: no error")
	}
}
