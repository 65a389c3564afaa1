package qat

import (
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
)

func TestQConfigPresetsAndOverrides(t *testing.T) {
	m := BNCNN(1)
	c := W4A4LSQ().FirstLast8(m)
	bits := map[string]int{}
	for _, s := range m.Sites() {
		fc, on, err := c.fqConfig(m, s)
		if err != nil || !on {
			t.Fatalf("%s: on=%v err=%v", s.Name, on, err)
		}
		bits[s.Name] = fc.Bits
		if s.Kind == graph.SiteWeight && (fc.Scheme != fakequant.SymmetricNarrow || fc.Granularity != fakequant.PerChannel || fc.Axis != 0) {
			t.Errorf("%s: weight config %+v", s.Name, fc)
		}
		if s.Kind == graph.SiteActivation && (fc.Scheme != fakequant.AsymmetricSigned || !fc.LearnOffset || fc.Method != fakequant.LSQ) {
			t.Errorf("%s: activation config %+v", s.Name, fc)
		}
	}
	want := map[string]int{"input": 8, "conv1.weight": 8, "conv1.out": 8, "conv2.weight": 4, "conv2.out": 4,
		"conv3.weight": 4, "conv3.out": 4, "fc.weight": 8, "fc.out": 8}
	for k, v := range want {
		if bits[k] != v {
			t.Errorf("%s: %d bits, want %d", k, bits[k], v)
		}
	}
	// an override keyed by a non-first layer of the group (the BN) applies to the whole group
	fl := Spec{Float: true}
	c2 := W8A8().With("bn2", Override{Weight: &fl, Act: &fl})
	for _, s := range m.Sites() {
		_, on, _ := c2.fqConfig(m, s)
		if on == (s.Group == "conv2") {
			t.Errorf("%s quantized=%v with conv2 group float", s.Name, on)
		}
	}
	if _, err := Prepare(m, W8A8().With("nope", Override{})); err == nil {
		t.Error("override of an unknown layer accepted")
	}
	for _, n := range []string{"w8a8", "W4A8", "w4a4", "w4a4-obs", "w2a2"} {
		if _, err := Preset(n); err != nil {
			t.Errorf("Preset(%q): %v", n, err)
		}
	}
	if _, err := Preset("w3a3"); err == nil {
		t.Error("unknown preset accepted")
	}
	bad := W8A8()
	bad.Weight.Bits = 9
	if _, err := Prepare(m, bad); err == nil {
		t.Error("9-bit weights accepted")
	}
}
