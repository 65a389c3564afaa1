package graph

// Group is one operation of the integer runtime: a run of layers that export lowers to a single
// quantized op. Groups partition Model.Layers in order.
//
//   - Conv2d or Linear, then optionally BatchNorm (when the BN is the only consumer of the
//     conv/linear output), then optionally ReLU or ReLU6 (when it is the only consumer of the
//     previous output): one quantized conv/linear with BN folded and the activation in the clamp.
//   - Add, then optionally ReLU/ReLU6: one quantized add.
//   - Any other layer alone.
type Group struct {
	Op     string   // name of the first layer (the op that owns the quantizers)
	Kind   Kind     // kind of the first layer
	Layers []string // all layers of the group, in order
	BN     string   // folded BatchNorm layer, or ""
	Act    Kind     // fused activation (KindReLU, KindReLU6) or ""
	Out    string   // name of the last layer: its output is the group's output
}

// Requantizes reports whether the group's output is a new quantized tensor in the integer
// runtime (and so gets its own activation quantizer). MaxPool, Flatten and Dropout pass their
// input's quantization through unchanged.
func (g Group) Requantizes() bool {
	switch g.Kind {
	case KindMaxPool2d, KindFlatten, KindDropout:
		return false
	}
	return true
}

// Weighted reports whether the group has a weight quantizer (conv or linear).
func (g Group) Weighted() bool { return g.Kind == KindConv2d || g.Kind == KindLinear }

// Groups returns the fusion groups of the model (see Group).
func (m *Model) Groups() []Group {
	var gs []Group
	only := func(prev string, i int, kinds ...Kind) bool {
		if i >= len(m.Layers) {
			return false
		}
		l := m.Layers[i]
		if len(l.Inputs) != 1 || l.Inputs[0] != prev {
			return false
		}
		if c := m.Consumers(prev); len(c) != 1 {
			return false
		}
		for _, k := range kinds {
			if l.Kind == k {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(m.Layers); {
		l := m.Layers[i]
		g := Group{Op: l.Name, Kind: l.Kind, Layers: []string{l.Name}, Out: l.Name}
		i++
		if l.Kind == KindConv2d || l.Kind == KindLinear {
			if only(g.Out, i, KindBatchNorm) {
				g.BN = m.Layers[i].Name
				g.Layers = append(g.Layers, g.BN)
				g.Out = g.BN
				i++
			}
		}
		if l.Kind == KindConv2d || l.Kind == KindLinear || l.Kind == KindAdd {
			if only(g.Out, i, KindReLU, KindReLU6) {
				g.Act = m.Layers[i].Kind
				g.Out = m.Layers[i].Name
				g.Layers = append(g.Layers, g.Out)
				i++
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// SiteKind distinguishes weight and activation quantizers.
type SiteKind string

// Quantizer site kinds.
const (
	SiteWeight     SiteKind = "weight"
	SiteActivation SiteKind = "activation"
	// SiteKVCache is a key or value entering a language model's KV cache (LM.KVSites): quantized
	// symmetrically with one scale per head.
	SiteKVCache SiteKind = "kv_cache"
)

// Site is a place where the integer runtime quantizes a tensor, and so where a prepared model
// puts a fake-quantizer. Names: "input" for the model input, "<op>.weight" for the (BN-folded)
// weight of a conv/linear group, "<op>.out" for a group's output after its fused activation.
type Site struct {
	Name  string
	Kind  SiteKind
	Group string // Op of the owning group ("" for the model input)
	Axis  int    // channel axis of a weight (0: output channels); -1 for activations
	Shape []int  // per-example shape for activations, full shape for weights
	Act   Kind   // activation fused before this (activation) site, or ""
}

// Sites lists, in graph order, every quantizer site of the model: the model input, then for each
// group its weight (if weighted) and its output (if it requantizes).
func (m *Model) Sites() []Site {
	s := []Site{{Name: InputName, Kind: SiteActivation, Axis: -1, Shape: m.Input}}
	for _, g := range m.Groups() {
		if g.Weighted() {
			w := m.LayerParam(g.Op, RoleWeight)
			s = append(s, Site{Name: g.Op + ".weight", Kind: SiteWeight, Group: g.Op, Axis: 0, Shape: w.Value.Shape().Clone()})
		}
		if g.Requantizes() {
			s = append(s, Site{Name: g.Op + ".out", Kind: SiteActivation, Group: g.Op, Axis: -1, Shape: m.Layer(g.Out).OutShape, Act: g.Act})
		}
	}
	return s
}
