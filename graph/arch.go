package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"gorgonia.org/tensor"
)

// MetaArch is the checkpoint metadata key under which SaveState records the model's architecture
// (the JSON of its Arch), so that a checkpoint alone rebuilds the model (FromCheckpoint).
const MetaArch = "arch"

// Architecture types recorded in Arch.Type.
const (
	ArchLayers = "layers" // a Model: an ordered list of layers (CNNs, MLPs)
	ArchLM     = "lm"     // an LM: a Llama-style decoder-only transformer given by its LMConfig
)

// Arch is the architecture of a model without its parameters: what a checkpoint records so that
// the model can be rebuilt from the checkpoint alone. For a Model it is the layer list (kinds,
// inputs, attributes and per-example shapes); for an LM its LMConfig.
type Arch struct {
	Type   string    `json:"type"` // ArchLayers or ArchLM
	Name   string    `json:"name"`
	Dtype  string    `json:"dtype"`            // "float32" or "float64"
	Input  []int     `json:"input,omitempty"`  // Model: per-example input shape
	Layers []*Layer  `json:"layers,omitempty"` // Model: the layers in order
	LM     *LMConfig `json:"lm,omitempty"`     // LM: the configuration
}

// ErrNoArch is returned by FromCheckpoint for a checkpoint that does not record its architecture
// (written before checkpoints were self-describing).
var ErrNoArch = errors.New("graph: the checkpoint does not record its architecture")

func dtypeName(d tensor.Dtype) string {
	if d == tensor.Float64 {
		return "float64"
	}
	return "float32"
}

func dtypeOf(s string) (tensor.Dtype, error) {
	switch s {
	case "float32", "":
		return tensor.Float32, nil
	case "float64":
		return tensor.Float64, nil
	}
	return tensor.Float32, fmt.Errorf("graph: arch dtype %q (want float32 or float64)", s)
}

// Arch returns the model's architecture record.
func (m *Model) Arch() Arch {
	ls := make([]*Layer, len(m.Layers))
	for i, l := range m.Layers {
		c := *l
		c.Inputs, c.InShape, c.OutShape, c.Params = slices.Clone(l.Inputs), slices.Clone(l.InShape), slices.Clone(l.OutShape), slices.Clone(l.Params)
		ls[i] = &c
	}
	return Arch{Type: ArchLayers, Name: m.Name, Dtype: dtypeName(m.Dtype), Input: slices.Clone(m.Input), Layers: ls}
}

// Arch returns the LM's architecture record.
func (m *LM) Arch() Arch {
	c := m.Config
	return Arch{Type: ArchLM, Name: m.Name, Dtype: dtypeName(m.Dtype), LM: &c}
}

// Build creates a freshly initialised model of this architecture (parameters from seed): a *Model
// for ArchLayers, an *LM for ArchLM. Each rebuilt layer must reproduce the recorded shapes and
// parameter names, so a record that does not describe a valid model is an error.
func (a Arch) Build(seed uint64) (Network, error) { return a.build(seed, nil) }

// build is Build; a non-nil lim bounds what the record may allocate (see buildLimit).
func (a Arch) build(seed uint64, lim *buildLimit) (Network, error) {
	dt, err := dtypeOf(a.Dtype)
	if err != nil {
		return nil, err
	}
	switch a.Type {
	case ArchLM:
		if a.LM == nil {
			return nil, fmt.Errorf("graph: arch %q: type lm without lm config", a.Name)
		}
		if lim != nil {
			if err := lim.lm(*a.LM); err != nil {
				return nil, fmt.Errorf("graph: arch %q: %w", a.Name, err)
			}
		}
		return NewLM(a.Name, *a.LM, dt, seed)
	case ArchLayers:
		m := NewModel(a.Name, a.Input, dt, seed)
		if lim != nil {
			if err := lim.activation(a.Input); err != nil {
				return nil, fmt.Errorf("graph: arch %q: input: %w", a.Name, err)
			}
			m.limit = lim
		}
		for i, l := range a.Layers {
			if l == nil {
				return nil, fmt.Errorf("graph: arch %q: layer %d is null", a.Name, i)
			}
			if lim != nil {
				if err := lim.attrs(l); err != nil {
					return nil, fmt.Errorf("graph: arch %q: layer %q: %w", a.Name, l.Name, err)
				}
			}
			if err := m.addRecorded(l); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("graph: arch %q: unknown type %q (want %q or %q)", a.Name, a.Type, ArchLayers, ArchLM)
}

// addRecorded appends a layer described by a recorded Layer through the public layer method of its
// kind and checks that it comes out as recorded.
func (m *Model) addRecorded(r *Layer) error {
	in := r.Inputs
	var l *Layer
	switch r.Kind {
	case KindLinear:
		l = m.Linear(r.Name, r.Out, r.Bias, in...)
	case KindConv2d:
		l = m.Conv2d(r.Name, Conv{Out: r.Out, Kernel: r.Kernel, Stride: r.Stride, Pad: r.Pad, Groups: r.Groups, Bias: r.Bias}, in...)
	case KindBatchNorm:
		l = m.BatchNorm(r.Name, r.Eps, r.Momentum, in...)
	case KindReLU:
		l = m.ReLU(r.Name, in...)
	case KindReLU6:
		l = m.ReLU6(r.Name, in...)
	case KindMaxPool2d:
		l = m.MaxPool2d(r.Name, r.Kernel, r.Stride, r.Pad, in...)
	case KindAvgPool2d:
		l = m.AvgPool2d(r.Name, r.Kernel, r.Stride, in...)
	case KindGlobalAvgPool:
		l = m.GlobalAvgPool(r.Name, in...)
	case KindFlatten:
		l = m.Flatten(r.Name, in...)
	case KindDropout:
		l = m.Dropout(r.Name, r.P, in...)
	case KindAdd:
		if len(in) != 2 {
			return fmt.Errorf("graph: arch %q: add layer %q has %d inputs, want 2", m.Name, r.Name, len(in))
		}
		l = m.Add(r.Name, in[0], in[1])
	default:
		return fmt.Errorf("graph: arch %q: layer %q has unknown kind %q", m.Name, r.Name, r.Kind)
	}
	if m.err != nil {
		return m.err
	}
	if r.OutShape != nil && !slices.Equal(l.OutShape, r.OutShape) {
		return fmt.Errorf("graph: arch %q: layer %q rebuilds with output %v, recorded %v", m.Name, r.Name, l.OutShape, r.OutShape)
	}
	if r.Params != nil && !slices.Equal(l.Params, r.Params) {
		return fmt.Errorf("graph: arch %q: layer %q rebuilds with parameters %v, recorded %v", m.Name, r.Name, l.Params, r.Params)
	}
	return nil
}

// ArchOf returns the architecture a checkpoint records (ErrNoArch when it records none).
func ArchOf(c *Checkpoint) (Arch, error) {
	j, ok := c.Meta[MetaArch]
	if !ok {
		return Arch{}, ErrNoArch
	}
	var a Arch
	if err := json.Unmarshal([]byte(j), &a); err != nil {
		return Arch{}, fmt.Errorf("%w: arch: %v", ErrCheckpoint, err)
	}
	return a, nil
}

// FromCheckpoint rebuilds the model a checkpoint records (see Arch) and loads its parameters:
// no registry of named models is needed. It returns a *Model or an *LM. The record is checked
// before anything is allocated: its parameters cannot hold more values than the checkpoint's
// tensors (they are loaded from them), and sizes beyond what this package trains (see
// buildLimit) are an error, so a small hostile file cannot make it allocate gigabytes.
func FromCheckpoint(c *Checkpoint) (Network, error) {
	a, err := ArchOf(c)
	if err != nil {
		return nil, err
	}
	var have int64
	for _, t := range c.Tensors {
		have += int64(t.Shape().TotalSize())
	}
	n, err := a.build(1, &buildLimit{params: have})
	if err != nil {
		return nil, err
	}
	if err := n.LoadState(c); err != nil {
		return nil, err
	}
	return n, nil
}

// Bounds of an architecture rebuilt from a checkpoint (FromCheckpoint).
const (
	maxArchActivation = 1 << 26 // values of one example at any layer's output (layer models)
	maxArchAttr       = 1 << 24 // a layer's channels, kernel, stride or padding
	maxArchCtx        = 1 << 20 // an LM's context length
	maxArchLogits     = 1 << 30 // an LM's Ctx x Vocab (the logits of one sequence)
	maxArchScores     = 1 << 32 // an LM's Heads x Ctx x Ctx (the attention scores of one sequence)
)

// buildLimit bounds what an untrusted architecture record may allocate: params is the number
// of parameter values still allowed (those the checkpoint holds).
type buildLimit struct{ params int64 }

// elements returns the product of shape, or false when a dimension is negative or the product
// exceeds max.
func elements(shape []int, max int64) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || (d > 0 && n > max/int64(d)) {
			return 0, false
		}
		n *= int64(d)
	}
	return n, n <= max
}

func (b *buildLimit) param(name string, shape []int) error {
	n, ok := elements(shape, b.params)
	if !ok {
		return fmt.Errorf("parameter %q of shape %v needs more values than the checkpoint's tensors hold", name, shape)
	}
	b.params -= n
	return nil
}

func (b *buildLimit) activation(shape []int) error {
	if _, ok := elements(shape, maxArchActivation); !ok || len(shape) == 0 || slices.Contains(shape, 0) {
		return fmt.Errorf("shape %v is empty or has more than %d values per example", shape, maxArchActivation)
	}
	return nil
}

func (b *buildLimit) attrs(l *Layer) error {
	for _, v := range []int{l.Out, l.Kernel, l.Stride, l.Pad, l.Groups} {
		if v < 0 || v > maxArchAttr {
			return fmt.Errorf("attribute %d outside [0, %d] (out %d, kernel %d, stride %d, pad %d, groups %d)", v, maxArchAttr, l.Out, l.Kernel, l.Stride, l.Pad, l.Groups)
		}
	}
	return nil
}

func (b *buildLimit) lm(c LMConfig) error {
	if err := c.defaults(); err != nil {
		return err
	}
	D, F, V := float64(c.Dim), float64(c.Hidden), float64(c.Vocab)
	params := 2*V*D + float64(c.Layers)*(4*D*D+3*D*F+2*D) + D
	switch {
	case params > float64(b.params):
		return fmt.Errorf("LM config %+v has %.4g parameters, more than the checkpoint's %d tensor values", c, params, b.params)
	case c.Ctx > maxArchCtx || float64(c.Ctx)*V > maxArchLogits || float64(c.Heads)*float64(c.Ctx)*float64(c.Ctx) > maxArchScores:
		return fmt.Errorf("LM config %+v: context %d is larger than this package handles (at most %d, Ctx x Vocab %d, Heads x Ctx^2 %d)", c, c.Ctx, maxArchCtx, maxArchLogits, int64(maxArchScores))
	}
	return nil
}

// ModelFromCheckpoint is FromCheckpoint for a layer model: it is an error when the checkpoint
// holds another kind of network (an LM).
func ModelFromCheckpoint(c *Checkpoint) (*Model, error) {
	n, err := FromCheckpoint(c)
	if err != nil {
		return nil, err
	}
	m, ok := n.(*Model)
	if !ok {
		return nil, fmt.Errorf("graph: the checkpoint holds a %T, not a layer model", n)
	}
	return m, nil
}

func putArch(c *Checkpoint, a Arch) {
	if c.Meta == nil {
		c.Meta = map[string]string{}
	}
	j, err := json.Marshal(a)
	if err == nil { // cannot fail: plain fields
		c.Meta[MetaArch] = string(j)
	}
	c.Meta["model"] = a.Name
}
