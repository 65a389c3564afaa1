package qat

import (
	"fmt"
	"strings"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
)

// Spec configures the fake-quantizers of one kind of site (weights or activations).
type Spec struct {
	// Bits is the bit width (2..8). Zero or Float leaves the site unquantized (float).
	Bits int
	// Method: fakequant.Observed (min/max or EMA observer), fakequant.LSQ (learned step size),
	// fakequant.PACT (learned clip, activations after ReLU only).
	Method fakequant.Method
	// PerTensor uses one scale for a weight instead of one per output channel (weights only).
	PerTensor bool
	// LearnOffset learns the activation zero point (LSQ+; LSQ only). Activations are always
	// asymmetric signed (the runtime's int8 contract); without a learned offset an LSQ activation
	// keeps the zero point fixed at the middle of the range.
	LearnOffset bool
	// Momentum of the Observed EMA (0: running min/max over all batches; 1: the current batch).
	Momentum float64
	// Float disables quantization at these sites.
	Float bool
}

// Override replaces the weight and/or activation spec of one group (by layer name).
type Override struct {
	Weight, Act *Spec
}

// QConfig is the per-layer quantization configuration that Prepare applies.
//
// Weights are symmetric narrow-range, per output channel unless PerTensor; activations
// (including the model input) are asymmetric signed with a zero point. Overrides are keyed by the
// name of any layer of a fusion group (usually the conv/linear) or "input".
type QConfig struct {
	Name      string
	Weight    Spec
	Act       Spec
	Overrides map[string]Override
}

// W8A8 is the TFLite-style int8 preset: 8-bit per-channel symmetric weights with the current
// min/max, 8-bit asymmetric activations with an EMA observer (momentum 0.1: QAT runs here are
// short), all Observed.
func W8A8() QConfig {
	return QConfig{Name: "W8A8",
		Weight: Spec{Bits: 8, Method: fakequant.Observed, Momentum: 1},
		Act:    Spec{Bits: 8, Method: fakequant.Observed, Momentum: 0.1}}
}

// W4A8LSQ is 4-bit per-channel LSQ weights with 8-bit LSQ+ activations.
func W4A8LSQ() QConfig {
	return QConfig{Name: "W4A8-LSQ",
		Weight: Spec{Bits: 4, Method: fakequant.LSQ},
		Act:    Spec{Bits: 8, Method: fakequant.LSQ, LearnOffset: true}}
}

// W4A4LSQ is 4-bit per-channel LSQ weights with 4-bit LSQ+ activations.
func W4A4LSQ() QConfig {
	return QConfig{Name: "W4A4-LSQ",
		Weight: Spec{Bits: 4, Method: fakequant.LSQ},
		Act:    Spec{Bits: 4, Method: fakequant.LSQ, LearnOffset: true}}
}

// W2A2 is 2-bit (ternary, [-1, 1]) per-channel LSQ weights with 2-bit LSQ+ activations.
func W2A2() QConfig {
	return QConfig{Name: "W2A2-LSQ",
		Weight: Spec{Bits: 2, Method: fakequant.LSQ},
		Act:    Spec{Bits: 2, Method: fakequant.LSQ, LearnOffset: true}}
}

// W4A4Observed is 4-bit weights and activations with observers (the PTQ counterpart of W4A4LSQ).
func W4A4Observed() QConfig {
	return QConfig{Name: "W4A4",
		Weight: Spec{Bits: 4, Method: fakequant.Observed, Momentum: 1},
		Act:    Spec{Bits: 4, Method: fakequant.Observed, Momentum: 0.1}}
}

// Preset returns the preset with the given name (case-insensitive): w8a8, w4a8, w4a4, w4a4-obs, w2a2.
func Preset(name string) (QConfig, error) {
	switch strings.ToLower(name) {
	case "w8a8":
		return W8A8(), nil
	case "w4a8", "w4a8-lsq":
		return W4A8LSQ(), nil
	case "w4a4", "w4a4-lsq":
		return W4A4LSQ(), nil
	case "w4a4-obs", "w4a4-observed":
		return W4A4Observed(), nil
	case "w2a2", "w2a2-lsq":
		return W2A2(), nil
	}
	return QConfig{}, fmt.Errorf("qat: unknown preset %q (w8a8, w4a8, w4a4, w4a4-obs, w2a2)", name)
}

// With returns a copy of c with an override for the group containing layer.
func (c QConfig) With(layer string, o Override) QConfig {
	m := make(map[string]Override, len(c.Overrides)+1)
	for k, v := range c.Overrides {
		m[k] = v
	}
	m[layer] = o
	c.Overrides = m
	return c
}

// FirstLast8 returns c with the model input, the first and the last weighted group at 8 bits
// (same methods), a common choice for low-bit models.
func (c QConfig) FirstLast8(m *graph.Model) QConfig {
	var weighted []string
	for _, g := range m.Groups() {
		if g.Weighted() {
			weighted = append(weighted, g.Op)
		}
	}
	w8, a8 := c.Weight, c.Act
	w8.Bits, a8.Bits = 8, 8
	c = c.With(graph.InputName, Override{Act: &a8})
	if len(weighted) > 0 {
		c = c.With(weighted[0], Override{Weight: &w8, Act: &a8})
		c = c.With(weighted[len(weighted)-1], Override{Weight: &w8, Act: &a8})
	}
	c.Name += "-fl8"
	return c
}

// spec returns the spec for a site after overrides.
func (c QConfig) spec(m *graph.Model, s graph.Site) Spec {
	sp := c.Act
	if s.Kind == graph.SiteWeight {
		sp = c.Weight
	}
	keys := []string{s.Name}
	if s.Group != "" {
		for _, g := range m.Groups() {
			if g.Op == s.Group {
				keys = g.Layers
			}
		}
	}
	for _, k := range keys {
		if o, ok := c.Overrides[k]; ok {
			if s.Kind == graph.SiteWeight && o.Weight != nil {
				sp = *o.Weight
			}
			if s.Kind == graph.SiteActivation && o.Act != nil {
				sp = *o.Act
			}
		}
	}
	return sp
}

// fqConfig converts a spec at a site to a fakequant.Config.
func (c QConfig) fqConfig(m *graph.Model, s graph.Site) (fakequant.Config, bool, error) {
	sp := c.spec(m, s)
	if sp.Float || sp.Bits == 0 {
		return fakequant.Config{}, false, nil
	}
	fc := fakequant.Config{Name: s.Name, Bits: sp.Bits, Method: sp.Method, Momentum: sp.Momentum}
	if s.Kind == graph.SiteWeight {
		fc.Scheme = fakequant.SymmetricNarrow
		if !sp.PerTensor {
			fc.Granularity, fc.Axis = fakequant.PerChannel, s.Axis
		}
	} else {
		fc.Scheme = fakequant.AsymmetricSigned
		fc.LearnOffset = sp.LearnOffset && sp.Method == fakequant.LSQ
	}
	if err := fc.Validate(); err != nil {
		return fc, false, fmt.Errorf("qat: %s site %q: %w", c.Name, s.Name, err)
	}
	return fc, true, nil
}

// Describe lists every site with its effective setting, one per line (for logs and reports).
func (c QConfig) Describe(m *graph.Model) string {
	var lines []string
	for _, s := range m.Sites() {
		fc, on, err := c.fqConfig(m, s)
		switch {
		case err != nil:
			lines = append(lines, fmt.Sprintf("%-20s error: %v", s.Name, err))
		case !on:
			lines = append(lines, fmt.Sprintf("%-20s float", s.Name))
		default:
			lines = append(lines, fmt.Sprintf("%-20s %d-bit %v %v %v", s.Name, fc.Bits, fc.Scheme, fc.Granularity, fc.Method))
		}
	}
	return strings.Join(lines, "\n")
}

// Bits returns the bit width configured at a site after overrides (0 for a float site).
func (c QConfig) Bits(m *graph.Model, s graph.Site) int {
	sp := c.spec(m, s)
	if sp.Float {
		return 0
	}
	return sp.Bits
}
