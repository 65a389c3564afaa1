package qat

import (
	"bytes"
	"encoding/json"
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
	// LearnOffset learns the zero point (LSQ+; LSQ with an asymmetric scheme only, ignored at sites
	// with the default symmetric weight scheme). Without a learned offset an LSQ asymmetric signed
	// activation keeps the zero point fixed at the middle of the range.
	LearnOffset bool
	// Momentum of the Observed EMA (0: running min/max over all batches; 1: the current batch).
	Momentum float64
	// SinglePass (Observed only, meant for an EMA with a small Momentum) quantizes each batch with
	// the range from before it while the same sweep updates the observer: one pass over the tensor
	// instead of two (fakequant.Config.SinglePass). The presets set it on activations.
	SinglePass bool
	// Float disables quantization at these sites.
	Float bool
	// Scheme chooses the integer range; SchemeDefault is symmetric narrow-range for weights and
	// asymmetric signed for activations (the runtime's int8 contract; export expects it).
	Scheme Scheme
	// GroupSize > 0 gives weights one scale per GroupSize consecutive input channels of each output
	// channel (fakequant.PerGroup along the weight's axis 1, the input dimension); the input size
	// must be a multiple of it. Weights only; excludes PerTensor.
	GroupSize int
	// Observer chooses how ranges are found by Calibrate and by the Trainer's quantizer
	// initialisation: min/max (default), EMA, percentile or MSE.
	Observer Observer
	// Percentile is the upper percentile of ObserverPercentile in (50, 100]; 0 means DefaultPercentile.
	Percentile float64
	// ScaleF16 rounds learned (LSQ) weight scales to half precision in the forward, as llama.cpp
	// stores Q4_0/Q8_0 block scales (fakequant.Config.ScaleF16; GGMLPreset.LearnScale sets it).
	ScaleF16 bool
}

// Override replaces the weight and/or activation spec of one group (by layer name).
type Override struct {
	Weight *Spec `json:"weight,omitempty"`
	Act    *Spec `json:"act,omitempty"`
}

// QConfig is the per-layer quantization configuration that Prepare applies.
//
// By default weights are symmetric narrow-range, per output channel unless PerTensor or GroupSize;
// activations (including the model input) are asymmetric signed with a zero point (Spec.Scheme
// changes either). Overrides are keyed by the
// name of any layer of a fusion group (usually the conv/linear) or "input".
type QConfig struct {
	Name      string              `json:"name"`
	Weight    Spec                `json:"weight"`
	Act       Spec                `json:"act"`
	Overrides map[string]Override `json:"overrides,omitempty"`
	// BiasQuant: simulate the runtime's int32 bias in the fake-quant forward (see
	// NetQuant.QuantizeBias); the zero value BiasAuto does for weights below 8 bits.
	BiasQuant BiasMode `json:"bias_quant,omitempty"`
	// KV, when set (and not Float), fake-quantizes the keys and values entering a language
	// model's KV cache (graph.LM.KVSites: per block, the keys after RoPE and the values) with
	// this spec: symmetric narrow range with one scale per head, as the runtime's KV cache
	// stores them, at Bits 2..8 (8 and 4 are the usual choices; export stores the levels in the
	// runtime's int8 cache and clamps it to the site's range). Like every site it is trained
	// through the STE (LSQ scales are learned), calibrated, saved in checkpoints and exported.
	// Nil: the KV cache is not modelled in training (export calibrates an 8-bit cache). Only
	// language models (*graph.LM) have KV-cache sites.
	KV *Spec `json:"kv,omitempty"`
	// GGML, when set, makes the prepared LM compute llama.cpp's CPU arithmetic (GGMLPreset):
	// NetQuant rounds every site the Specs leave float as the preset does and substitutes
	// llama.cpp's matmul, RMSNorm, SwiGLU and attention arithmetic. GGMLPreset.QConfig sets it.
	GGML *GGMLPreset `json:"ggml,omitempty"`
}

// W8A8 is the TFLite-style int8 preset: 8-bit per-channel symmetric weights with the current
// min/max, 8-bit asymmetric activations with an EMA observer (momentum 0.1: QAT runs here are
// short; single pass: each batch uses the range from before it), all Observed.
func W8A8() QConfig {
	return QConfig{Name: "W8A8",
		Weight: Spec{Bits: 8, Method: fakequant.Observed, Momentum: 1},
		Act:    Spec{Bits: 8, Method: fakequant.Observed, Momentum: 0.1, SinglePass: true}}
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
	return QConfig{Name: "W4A4-obs",
		Weight: Spec{Bits: 4, Method: fakequant.Observed, Momentum: 1},
		Act:    Spec{Bits: 4, Method: fakequant.Observed, Momentum: 0.1, SinglePass: true}}
}

// ObservedSuffix ends the name of the observed twin of a QConfig (see ObservedTwin).
const ObservedSuffix = "-observed"

// Preset returns the preset with the given name (case-insensitive): w8a8, w4a8 (w4a8-lsq),
// w4a4 (w4a4-lsq), w4a4-obs, w2a2 (w2a2-lsq); any of them followed by "-observed" is its
// ObservedTwin (what Calibrate uses). For every preset c, Preset(c.Name) returns c, also for
// ObservedTwin(c); QConfigs with overrides (e.g. FirstLast8) are not presets: store them with
// MarshalJSON (Prepared.SaveState does).
func Preset(name string) (QConfig, error) {
	n := strings.ToLower(name)
	if base, ok := strings.CutSuffix(n, ObservedSuffix); ok {
		c, err := Preset(base)
		if err != nil {
			return QConfig{}, err
		}
		return ObservedTwin(c), nil
	}
	switch n {
	case "w8a8":
		return W8A8(), nil
	case "w4a8", "w4a8-lsq":
		return W4A8LSQ(), nil
	case "w4a4", "w4a4-lsq":
		return W4A4LSQ(), nil
	case "w4a4-obs":
		return W4A4Observed(), nil
	case "w2a2", "w2a2-lsq":
		return W2A2(), nil
	}
	return QConfig{}, fmt.Errorf("qat: unknown preset %q (w8a8, w4a8, w4a4, w4a4-obs, w2a2, each optionally with %q)", name, ObservedSuffix)
}

// specJSON is the JSON form of Spec: the method by name.
type specJSON struct {
	Bits        int     `json:"bits"`
	Method      string  `json:"method"`
	PerTensor   bool    `json:"per_tensor,omitempty"`
	LearnOffset bool    `json:"learn_offset,omitempty"`
	Momentum    float64 `json:"momentum,omitempty"`
	SinglePass  bool    `json:"single_pass,omitempty"`
	Float       bool    `json:"float,omitempty"`
	Scheme      string  `json:"scheme,omitempty"`
	GroupSize   int     `json:"group_size,omitempty"`
	Observer    string  `json:"observer,omitempty"`
	Percentile  float64 `json:"percentile,omitempty"`
	ScaleF16    bool    `json:"scale_f16,omitempty"`
}

// MarshalJSON encodes s with the method by name ("lsq", "observed", "pact"), the scheme
// ("symmetric", "asymmetric", "unsigned") and observer ("ema", "percentile", "mse") by name; default
// options are omitted, so the presets encode as they did before these options existed.
func (s Spec) MarshalJSON() ([]byte, error) {
	return json.Marshal(specJSON{Bits: s.Bits, Method: s.Method.String(), PerTensor: s.PerTensor,
		LearnOffset: s.LearnOffset, Momentum: s.Momentum, SinglePass: s.SinglePass, Float: s.Float,
		Scheme: s.Scheme.String(), GroupSize: s.GroupSize, Observer: s.Observer.String(), Percentile: s.Percentile,
		ScaleF16: s.ScaleF16})
}

// UnmarshalJSON decodes what MarshalJSON wrote; an unknown method or field is an error.
func (s *Spec) UnmarshalJSON(b []byte) error {
	var j specJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	var m fakequant.Method
	switch j.Method {
	case fakequant.LSQ.String():
		m = fakequant.LSQ
	case fakequant.Observed.String():
		m = fakequant.Observed
	case fakequant.PACT.String():
		m = fakequant.PACT
	default:
		return fmt.Errorf("qat: unknown quantizer method %q", j.Method)
	}
	sc, err := parseScheme(j.Scheme)
	if err != nil {
		return err
	}
	ob, err := parseObserver(j.Observer)
	if err != nil {
		return err
	}
	*s = Spec{Bits: j.Bits, Method: m, PerTensor: j.PerTensor, LearnOffset: j.LearnOffset, Momentum: j.Momentum, SinglePass: j.SinglePass, Float: j.Float,
		Scheme: sc, GroupSize: j.GroupSize, Observer: ob, Percentile: j.Percentile, ScaleF16: j.ScaleF16}
	return nil
}

// ParseQConfig decodes a QConfig from its JSON form (json.Marshal of a QConfig), rejecting
// unknown fields, trailing data and specs that Prepare would reject at any model (bit widths
// outside 2..8, a Momentum outside [0, 1], impossible option combinations, an unknown GGML preset).
func ParseQConfig(b []byte) (QConfig, error) {
	var c QConfig
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return QConfig{}, fmt.Errorf("qat: QConfig JSON: %w", err)
	}
	if d.More() {
		return QConfig{}, fmt.Errorf("qat: QConfig JSON: trailing data")
	}
	if c.Name == "" {
		return QConfig{}, fmt.Errorf("qat: QConfig JSON: no name")
	}
	if len(c.Overrides) == 0 {
		c.Overrides = nil
	}
	if err := c.check(); err != nil {
		return QConfig{}, fmt.Errorf("qat: QConfig JSON: %w", err)
	}
	return c, nil
}

// check applies the checks of Prepare that need no model to every spec of c: each quantized
// (not Float, Bits > 0) spec must be valid at a site of its kind (Bits 2..8, Momentum in [0, 1],
// the option combinations of Spec), and a GGML preset must be one Prepare accepts.
func (c QConfig) check() error {
	if c.GGML != nil {
		if err := c.GGML.check(); err != nil {
			return err
		}
	}
	type use struct {
		what string
		sp   *Spec
		kind graph.SiteKind
	}
	uses := []use{{"weight", &c.Weight, graph.SiteWeight}, {"act", &c.Act, graph.SiteActivation}, {"kv", c.KV, graph.SiteKVCache}}
	for k, o := range c.Overrides {
		uses = append(uses, use{"overrides[" + k + "].weight", o.Weight, graph.SiteWeight}, use{"overrides[" + k + "].act", o.Act, graph.SiteActivation})
	}
	for _, u := range uses {
		if u.sp == nil {
			continue
		}
		// a weight site whose input size the group size divides
		s := graph.Site{Name: u.what, Kind: u.kind, Axis: -1, Shape: []int{1, max(1, u.sp.GroupSize)}}
		if u.kind == graph.SiteWeight {
			s.Axis = 0
		}
		if _, _, err := c.specConfig(*u.sp, s); err != nil {
			return err
		}
	}
	return nil
}

// Checkpoint metadata keys written by Prepared.SaveState (and graph.Model.SaveState for the model).
const (
	MetaQConfigName = "qconfig"      // QConfig.Name
	MetaQConfig     = "qconfig_json" // the whole QConfig as JSON (ParseQConfig)
	MetaModel       = "model"        // graph.Model.Name, the architecture (see Model)
)

// CheckpointQConfig returns the QConfig a checkpoint was written with: the JSON QConfig when
// present, else the preset named by its "qconfig" entry (checkpoints written before the JSON was
// stored). A checkpoint without either (a float checkpoint) is an error.
func CheckpointQConfig(c *graph.Checkpoint) (QConfig, error) {
	if j, ok := c.Meta[MetaQConfig]; ok {
		return ParseQConfig([]byte(j))
	}
	name, ok := c.Meta[MetaQConfigName]
	if !ok || name == "" {
		return QConfig{}, fmt.Errorf("qat: the checkpoint has no QConfig (a float checkpoint?)")
	}
	qc, err := Preset(name)
	if err != nil {
		return QConfig{}, fmt.Errorf("qat: the checkpoint's QConfig %q is not a preset and it holds no QConfig JSON", name)
	}
	return qc, nil
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
func (c QConfig) FirstLast8(m graph.Network) QConfig {
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

// spec returns the spec for a site after overrides (KV-cache sites: KV, no overrides).
func (c QConfig) spec(m graph.Network, s graph.Site) Spec {
	if s.Kind == graph.SiteKVCache {
		if c.KV == nil {
			return Spec{Float: true}
		}
		return *c.KV
	}
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
func (c QConfig) fqConfig(m graph.Network, s graph.Site) (fakequant.Config, bool, error) {
	return c.specConfig(c.spec(m, s), s)
}

// specConfig converts the spec sp at site s to a fakequant.Config.
func (c QConfig) specConfig(sp Spec, s graph.Site) (fakequant.Config, bool, error) {
	if sp.Float || sp.Bits == 0 {
		return fakequant.Config{}, false, nil
	}
	fc := fakequant.Config{Name: s.Name, Bits: sp.Bits, Method: sp.Method, Momentum: sp.Momentum,
		SinglePass: sp.SinglePass && sp.Method == fakequant.Observed}
	if err := sp.validate(s); err != nil {
		return fc, false, fmt.Errorf("qat: %s site %q: %w", c.Name, s.Name, err)
	}
	weight := s.Kind == graph.SiteWeight
	fc.Scheme = sp.Scheme.fq(weight)
	if s.Kind == graph.SiteKVCache {
		// the runtime's KV cache: symmetric, one scale per head (axis -2 of the [Batch, Heads,
		// Ctx*HeadDim] node and of the site's [Heads, Ctx*HeadDim] shape)
		fc.Scheme, fc.Granularity, fc.Axis = fakequant.SymmetricNarrow, fakequant.PerChannel, -2
	}
	if weight {
		switch {
		case sp.GroupSize > 0:
			fc.Granularity, fc.Axis, fc.GroupSize = fakequant.PerGroup, 1, sp.GroupSize
		case !sp.PerTensor:
			fc.Granularity, fc.Axis = fakequant.PerChannel, s.Axis
		}
	}
	fc.LearnOffset = sp.LearnOffset && sp.Method == fakequant.LSQ && fc.Scheme != fakequant.SymmetricNarrow
	fc.ScaleF16 = sp.ScaleF16 && weight
	if err := fc.Validate(); err != nil {
		return fc, false, fmt.Errorf("qat: %s site %q: %w", c.Name, s.Name, err)
	}
	return fc, true, nil
}

// Describe lists every site with its effective setting, one per line (for logs and reports).
func (c QConfig) Describe(m graph.Network) string {
	var lines []string
	sites := m.Sites()
	if lm, ok := m.(*graph.LM); ok && c.KV != nil {
		sites = append(sites, lm.KVSites()...)
	}
	for _, s := range sites {
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
func (c QConfig) Bits(m graph.Network, s graph.Site) int {
	sp := c.spec(m, s)
	if sp.Float {
		return 0
	}
	return sp.Bits
}
