package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gorgonia.org/tensor"
)

// Kind names a layer type. The strings are stable (they appear in checkpoints and exported models).
type Kind string

// Layer kinds.
const (
	KindLinear        Kind = "linear"
	KindConv2d        Kind = "conv2d"
	KindBatchNorm     Kind = "batchnorm" // BatchNorm2d on (C,H,W) input, BatchNorm1d on (F) input
	KindReLU          Kind = "relu"
	KindReLU6         Kind = "relu6"
	KindMaxPool2d     Kind = "maxpool2d"
	KindAvgPool2d     Kind = "avgpool2d"
	KindGlobalAvgPool Kind = "globalavgpool"
	KindFlatten       Kind = "flatten"
	KindAdd           Kind = "add"
	KindDropout       Kind = "dropout"
)

// InputName is the name under which layers refer to the model input.
const InputName = "input"

// Role says what a parameter is for.
type Role string

// Parameter roles.
const (
	RoleWeight      Role = "weight"       // conv: [O, I/groups, KH, KW]; linear: [Out, In]
	RoleBias        Role = "bias"         // [O]
	RoleGamma       Role = "gamma"        // BN scale [C]
	RoleBeta        Role = "beta"         // BN shift [C]
	RoleRunningMean Role = "running_mean" // BN buffer [C], not trained by gradient
	RoleRunningVar  Role = "running_var"  // BN buffer [C] (unbiased batch variance, EMA)
)

// Param is one named tensor of a model. Its Value is shared by every graph the model builds, so
// an optimizer that updates Value in place updates all of them.
type Param struct {
	Name      string // "<layer>.<role>", unique in the model
	Layer     string
	Role      Role
	Value     *tensor.Dense
	Trainable bool // false for BN running statistics
}

// Layer is one entry of the model spec. Shapes are per example (no batch axis): (C, H, W) for
// images, (F) for vectors. Unused attributes are zero.
type Layer struct {
	Name     string
	Kind     Kind
	Inputs   []string // producer layer names (InputName for the model input); two for Add
	InShape  []int
	OutShape []int

	Out    int  // output channels / features (conv, linear)
	Kernel int  // square kernel (conv, pools)
	Stride int  // conv, pools
	Pad    int  // symmetric zero padding (conv, maxpool)
	Groups int  // conv groups (1 = dense, In = depthwise)
	Bias   bool // conv/linear own a bias

	Eps      float64 // BN epsilon
	Momentum float64 // BN running-stat EMA factor: r = (1-m)*r + m*batch
	P        float64 // dropout probability

	Params []string // names of the layer's parameters in the model, in Role order
}

// Model is an ordered list of layers plus their parameters. Build it with the layer methods
// (Conv2d, BatchNorm, ReLU, ...), which append in order, take their input from the previous
// layer and initialise parameters from the model's seeded generator. Errors in a layer call
// (bad shapes, duplicate names) are recorded and reported by Err and Build.
type Model struct {
	Name  string
	Input []int        // per-example input shape, e.g. (1, 28, 28)
	Dtype tensor.Dtype // Float32 (default) or Float64

	Layers []*Layer
	params []*Param
	byName map[string]*Param
	layerI map[string]int
	counts map[Kind]int
	rng    *rand.Rand
	err    error
	limit  *buildLimit // set while rebuilding an untrusted architecture (Arch.build)
}

// NewModel returns an empty model with the given per-example input shape. Parameters are
// initialised from a PCG generator seeded with seed.
func NewModel(name string, input []int, dtype tensor.Dtype, seed uint64) *Model {
	if dtype != tensor.Float64 {
		dtype = tensor.Float32
	}
	return &Model{
		Name: name, Input: slices.Clone(input), Dtype: dtype,
		byName: map[string]*Param{}, layerI: map[string]int{}, counts: map[Kind]int{},
		rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
	}
}

// Err returns the first error recorded while adding layers.
func (m *Model) Err() error { return m.err }

// Params returns the parameters in creation order.
func (m *Model) Params() []*Param { return m.params }

// Param returns the parameter with the given name, or nil.
func (m *Model) Param(name string) *Param { return m.byName[name] }

// Layer returns the layer with the given name, or nil.
func (m *Model) Layer(name string) *Layer {
	if i, ok := m.layerI[name]; ok {
		return m.Layers[i]
	}
	return nil
}

// LayerParam returns the parameter of layer with the given role, or nil.
func (m *Model) LayerParam(layer string, r Role) *Param { return m.byName[layer+"."+string(r)] }

// OutShape returns the per-example shape of the last layer (the model output).
func (m *Model) OutShape() []int {
	if len(m.Layers) == 0 {
		return m.Input
	}
	return m.Layers[len(m.Layers)-1].OutShape
}

// Consumers returns the names of the layers that read the output of the named layer.
func (m *Model) Consumers(name string) []string {
	var out []string
	for _, l := range m.Layers {
		if slices.Contains(l.Inputs, name) {
			out = append(out, l.Name)
		}
	}
	return out
}

func (m *Model) fail(format string, a ...any) *Layer {
	if m.err == nil {
		m.err = fmt.Errorf("graph: model %q: "+format, append([]any{m.Name}, a...)...)
	}
	return &Layer{}
}

func (m *Model) shapeOf(name string) ([]int, bool) {
	if name == InputName {
		return m.Input, true
	}
	if i, ok := m.layerI[name]; ok {
		return m.Layers[i].OutShape, true
	}
	return nil, false
}

// add names the layer, checks it and appends it. in == "" means the previous layer.
func (m *Model) add(l *Layer, in ...string) *Layer {
	if m.err != nil {
		return &Layer{}
	}
	if l.Name == "" {
		l.Name = fmt.Sprintf("%s%d", l.Kind, m.counts[l.Kind])
	}
	m.counts[l.Kind]++
	if _, dup := m.layerI[l.Name]; dup || l.Name == InputName {
		return m.fail("duplicate layer name %q", l.Name)
	}
	if len(in) == 0 {
		in = []string{InputName}
		if n := len(m.Layers); n > 0 {
			in[0] = m.Layers[n-1].Name
		}
	}
	for _, s := range in {
		sh, ok := m.shapeOf(s)
		if !ok {
			return m.fail("layer %q: unknown input %q", l.Name, s)
		}
		if l.InShape == nil {
			l.InShape = slices.Clone(sh)
		} else if !slices.Equal(l.InShape, sh) {
			return m.fail("layer %q: input shapes %v and %v differ", l.Name, l.InShape, sh)
		}
	}
	l.Inputs = in
	if err := l.inferShape(); err != nil {
		return m.fail("layer %q: %v", l.Name, err)
	}
	if m.limit != nil {
		if err := m.limit.activation(l.OutShape); err != nil {
			return m.fail("layer %q: %v", l.Name, err)
		}
	}
	m.layerI[l.Name] = len(m.Layers)
	m.Layers = append(m.Layers, l)
	return l
}

func (l *Layer) inferShape() error {
	in := l.InShape
	img := func() error {
		if len(in) != 3 {
			return fmt.Errorf("%s needs (C,H,W) input, got %v", l.Kind, in)
		}
		return nil
	}
	switch l.Kind {
	case KindLinear:
		if len(in) != 1 || l.Out < 1 {
			return fmt.Errorf("linear needs a vector input (got %v; add Flatten) and Out >= 1", in)
		}
		l.OutShape = []int{l.Out}
	case KindConv2d:
		if err := img(); err != nil {
			return err
		}
		if l.Groups < 1 || in[0]%l.Groups != 0 || l.Out%l.Groups != 0 || l.Out < 1 {
			return fmt.Errorf("conv2d: %d in, %d out channels, %d groups", in[0], l.Out, l.Groups)
		}
		if l.Kernel < 1 || l.Stride < 1 || l.Pad < 0 {
			return fmt.Errorf("conv2d: kernel %d stride %d pad %d", l.Kernel, l.Stride, l.Pad)
		}
		h := (in[1]+2*l.Pad-l.Kernel)/l.Stride + 1
		w := (in[2]+2*l.Pad-l.Kernel)/l.Stride + 1
		if h < 1 || w < 1 {
			return fmt.Errorf("conv2d: kernel %d does not fit %v with pad %d", l.Kernel, in, l.Pad)
		}
		l.OutShape = []int{l.Out, h, w}
	case KindMaxPool2d, KindAvgPool2d:
		if err := img(); err != nil {
			return err
		}
		if l.Kernel < 1 || l.Stride < 1 || l.Pad < 0 || (l.Kind == KindAvgPool2d && l.Pad != 0) {
			return fmt.Errorf("%s: kernel %d stride %d pad %d", l.Kind, l.Kernel, l.Stride, l.Pad)
		}
		h := (in[1]+2*l.Pad-l.Kernel)/l.Stride + 1
		w := (in[2]+2*l.Pad-l.Kernel)/l.Stride + 1
		if h < 1 || w < 1 {
			return fmt.Errorf("%s: window %d does not fit %v", l.Kind, l.Kernel, in)
		}
		l.OutShape = []int{in[0], h, w}
	case KindGlobalAvgPool:
		if err := img(); err != nil {
			return err
		}
		l.OutShape = []int{in[0]}
	case KindFlatten:
		n := 1
		for _, d := range in {
			n *= d
		}
		l.OutShape = []int{n}
	case KindBatchNorm:
		if len(in) != 1 && len(in) != 3 {
			return fmt.Errorf("batchnorm needs (C,H,W) or (F) input, got %v", in)
		}
		l.OutShape = slices.Clone(in)
	case KindDropout:
		if l.P < 0 || l.P >= 1 {
			return fmt.Errorf("dropout probability %v outside [0,1)", l.P)
		}
		l.OutShape = slices.Clone(in)
	default:
		l.OutShape = slices.Clone(in)
	}
	return nil
}

// initTensor returns a new tensor of dtype (Float32 or Float64) and shape whose elements are
// successive values of init.
func initTensor(dt tensor.Dtype, shape []int, init func() float64) *tensor.Dense {
	t := tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(init())
		}
	case []float64:
		for i := range d {
			d[i] = init()
		}
	}
	return t
}

func (m *Model) newParam(l *Layer, r Role, shape []int, trainable bool, init func() float64) {
	if m.err != nil {
		return
	}
	if m.limit != nil {
		if err := m.limit.param(l.Name+"."+string(r), shape); err != nil {
			m.fail("%v", err)
			return
		}
	}
	p := &Param{Name: l.Name + "." + string(r), Layer: l.Name, Role: r, Trainable: trainable,
		Value: initTensor(m.Dtype, shape, init)}
	l.Params = append(l.Params, p.Name)
	m.params = append(m.params, p)
	m.byName[p.Name] = p
}

func (m *Model) heUniform(fanIn int) func() float64 {
	b := math.Sqrt(6 / float64(fanIn))
	return func() float64 { return (2*m.rng.Float64() - 1) * b }
}

func constInit(v float64) func() float64 { return func() float64 { return v } }

// Conv holds the attributes of a 2-D convolution. Zero Stride and Groups mean 1.
type Conv struct {
	Out, Kernel, Stride, Pad, Groups int
	Bias                             bool
}

// Conv2d appends a 2-D convolution over NCHW input with weight [Out, In/Groups, K, K] initialised
// He-uniform (bound sqrt(6/fan_in)) and an optional zero bias. Groups == In channels gives a
// depthwise convolution.
func (m *Model) Conv2d(name string, c Conv, in ...string) *Layer {
	if c.Stride == 0 {
		c.Stride = 1
	}
	if c.Groups == 0 {
		c.Groups = 1
	}
	l := m.add(&Layer{Name: name, Kind: KindConv2d, Out: c.Out, Kernel: c.Kernel, Stride: c.Stride, Pad: c.Pad, Groups: c.Groups, Bias: c.Bias}, in...)
	if m.err != nil {
		return l
	}
	icg := l.InShape[0] / c.Groups
	m.newParam(l, RoleWeight, []int{c.Out, icg, c.Kernel, c.Kernel}, true, m.heUniform(icg*c.Kernel*c.Kernel))
	if c.Bias {
		m.newParam(l, RoleBias, []int{c.Out}, true, constInit(0))
	}
	return l
}

// Linear appends a fully connected layer y = x W^T + b with W of shape [out, in] (He-uniform)
// and an optional zero bias b [out].
func (m *Model) Linear(name string, out int, bias bool, in ...string) *Layer {
	l := m.add(&Layer{Name: name, Kind: KindLinear, Out: out, Bias: bias}, in...)
	if m.err != nil {
		return l
	}
	m.newParam(l, RoleWeight, []int{out, l.InShape[0]}, true, m.heUniform(l.InShape[0]))
	if bias {
		m.newParam(l, RoleBias, []int{out}, true, constInit(0))
	}
	return l
}

// BatchNorm appends batch normalisation over the channel axis (BatchNorm2d for (C,H,W) input,
// BatchNorm1d for (F) input): y = gamma*(x-mean)/sqrt(var+eps) + beta, batch statistics in
// training, running statistics in evaluation. Zero eps/momentum mean 1e-5 / 0.1.
func (m *Model) BatchNorm(name string, eps, momentum float64, in ...string) *Layer {
	if eps == 0 {
		eps = 1e-5
	}
	if momentum == 0 {
		momentum = 0.1
	}
	l := m.add(&Layer{Name: name, Kind: KindBatchNorm, Eps: eps, Momentum: momentum}, in...)
	if m.err != nil {
		return l
	}
	c := l.InShape[0]
	m.newParam(l, RoleGamma, []int{c}, true, constInit(1))
	m.newParam(l, RoleBeta, []int{c}, true, constInit(0))
	m.newParam(l, RoleRunningMean, []int{c}, false, constInit(0))
	m.newParam(l, RoleRunningVar, []int{c}, false, constInit(1))
	return l
}

// ReLU appends max(x, 0).
func (m *Model) ReLU(name string, in ...string) *Layer {
	return m.add(&Layer{Name: name, Kind: KindReLU}, in...)
}

// ReLU6 appends min(max(x, 0), 6).
func (m *Model) ReLU6(name string, in ...string) *Layer {
	return m.add(&Layer{Name: name, Kind: KindReLU6}, in...)
}

// MaxPool2d appends max pooling over kernel x kernel windows (stride 0 means stride = kernel).
func (m *Model) MaxPool2d(name string, kernel, stride, pad int, in ...string) *Layer {
	if stride == 0 {
		stride = kernel
	}
	return m.add(&Layer{Name: name, Kind: KindMaxPool2d, Kernel: kernel, Stride: stride, Pad: pad}, in...)
}

// AvgPool2d appends average pooling over kernel x kernel windows without padding (stride 0
// means stride = kernel).
func (m *Model) AvgPool2d(name string, kernel, stride int, in ...string) *Layer {
	if stride == 0 {
		stride = kernel
	}
	return m.add(&Layer{Name: name, Kind: KindAvgPool2d, Kernel: kernel, Stride: stride}, in...)
}

// GlobalAvgPool appends the mean over H and W: (C,H,W) -> (C).
func (m *Model) GlobalAvgPool(name string, in ...string) *Layer {
	return m.add(&Layer{Name: name, Kind: KindGlobalAvgPool}, in...)
}

// Flatten appends a reshape of the per-example tensor to a vector.
func (m *Model) Flatten(name string, in ...string) *Layer {
	return m.add(&Layer{Name: name, Kind: KindFlatten}, in...)
}

// Add appends the element-wise sum of the outputs of layers a and b (a residual connection).
func (m *Model) Add(name, a, b string) *Layer {
	return m.add(&Layer{Name: name, Kind: KindAdd}, a, b)
}

// Dropout appends inverted dropout with drop probability p (identity in evaluation). Masks come
// from the generator the trainer passes to Net.FillMasks, so runs are reproducible.
func (m *Model) Dropout(name string, p float64, in ...string) *Layer {
	return m.add(&Layer{Name: name, Kind: KindDropout, P: p}, in...)
}
