package qmodel

import (
	"fmt"

	"github.com/qatgo/qatgo/quant"
)

// TensorID identifies a tensor of a model under construction (its index in Model.Tensors).
type TensorID int

// Weights are the integer weights of a Conv2D ([OutC, KH, KW, InC/Groups]) or FullyConnected ([N, K])
// op, row-major in Shape, with symmetric scales: one (per tensor) or one per output channel (axis 0).
// Values must lie in the narrow range ([-127,127], or [-7,7] when Int4 is set; int4 weights are
// stored packed two per byte).
type Weights struct {
	Values []int8
	Shape  []int
	Scales []float32
	Int4   bool
}

// Conv2DOptions are the attributes of a convolution. Zero strides and groups mean 1.
type Conv2DOptions struct {
	StrideH, StrideW                     int
	PadTop, PadLeft, PadBottom, PadRight int
	Groups                               int
	Act                                  Activation
}

// PoolOptions are the attributes of a pooling op. Zero strides mean the kernel size.
type PoolOptions struct {
	KernelH, KernelW                     int
	StrideH, StrideW                     int
	PadTop, PadLeft, PadBottom, PadRight int
	Act                                  Activation
}

// Builder constructs a Model op by op, computing output shapes. Errors are kept and returned by Build
// (the first one), so calls can be chained without checks; Build validates the whole model.
// Tensor names derive from op names: "<op>", "<op>/weights", "<op>/bias".
type Builder struct {
	m   Model
	err error
}

// NewBuilder starts a model with the given name.
func NewBuilder(name string) *Builder { return &Builder{m: Model{Name: name}} }

// SetProducer records the tool that produced the model.
func (b *Builder) SetProducer(p string) { b.m.Producer = p }

// SetLabels records the output class names.
func (b *Builder) SetLabels(labels []string) { b.m.Labels = append([]string(nil), labels...) }

// SetMeta records a free-form metadata entry.
func (b *Builder) SetMeta(key, value string) {
	if b.m.Meta == nil {
		b.m.Meta = map[string]string{}
	}
	b.m.Meta[key] = value
}

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("qmodel: builder: "+format, args...)
	}
}

func (b *Builder) add(t Tensor) TensorID {
	b.m.Tensors = append(b.m.Tensors, t)
	return TensorID(len(b.m.Tensors) - 1)
}

func (b *Builder) tensor(id TensorID) *Tensor {
	if id < 0 || int(id) >= len(b.m.Tensors) {
		b.fail("unknown tensor id %d", id)
		return &Tensor{Name: "?", DType: Int8, Shape: []int{1}, Quant: PerTensor(1, 0)}
	}
	return &b.m.Tensors[id]
}

func (b *Builder) op(op Op) { b.m.Ops = append(b.m.Ops, op) }

// Input adds a model input (per-sample shape, without the batch dimension). q is required for
// uint8 and int8 inputs and must be nil for float32.
func (b *Builder) Input(name string, dt DType, shape []int, q *QParams) TensorID {
	id := b.add(Tensor{Name: name, DType: dt, Shape: append([]int(nil), shape...), Quant: q})
	b.m.Inputs = append(b.m.Inputs, int(id))
	return id
}

// Output marks t as a model output.
func (b *Builder) Output(t TensorID) { b.m.Outputs = append(b.m.Outputs, int(t)) }

func (b *Builder) act(name string, shape []int, p quant.Params) TensorID {
	return b.add(Tensor{Name: name, DType: Int8, Shape: shape, Quant: PerTensor(p.Scale, p.ZeroPoint)})
}

func (b *Builder) inParams(t *Tensor) quant.Params {
	if t.Quant == nil || len(t.Quant.Scales) == 0 || len(t.Quant.ZeroPoints) == 0 {
		b.fail("tensor %q has no quantization parameters", t.Name)
		return quant.Params{Scale: 1}
	}
	return t.Quant.Params()
}

// Quantize adds a Quantize op from a float32 or uint8 input to int8 with parameters out.
func (b *Builder) Quantize(name string, in TensorID, out quant.Params) TensorID {
	shape := append([]int(nil), b.tensor(in).Shape...)
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpQuantize, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)}})
	return o
}

// Dequantize adds a Dequantize op to float32.
func (b *Builder) Dequantize(name string, in TensorID) TensorID {
	shape := append([]int(nil), b.tensor(in).Shape...)
	o := b.add(Tensor{Name: name, DType: Float32, Shape: shape})
	b.op(Op{Kind: OpDequantize, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)}})
	return o
}

func (b *Builder) weights(name string, w Weights) TensorID {
	n := 1
	for _, d := range w.Shape {
		n *= d
	}
	if len(w.Values) != n {
		b.fail("%s: %d weight values for shape %v", name, len(w.Values), w.Shape)
	}
	t := Tensor{Name: name + "/weights", DType: Int8, Shape: append([]int(nil), w.Shape...)}
	if w.Int4 {
		t.DType = Int4
		for i, v := range w.Values {
			if v < -8 || v > 7 {
				b.fail("%s: int4 weight %d = %d outside [-8,7]", name, i, v)
				break
			}
		}
		t.Data = Int4Data(w.Values)
	} else {
		t.Data = Int8Data(w.Values)
	}
	if len(w.Scales) == 1 {
		t.Quant = PerTensor(w.Scales[0], 0)
	} else {
		t.Quant = PerChannel(0, w.Scales)
	}
	return b.add(t)
}

// bias adds an int32 bias with scales inScale*wScales[c] (zero point 0).
func (b *Builder) bias(name string, bias []int32, inScale float32, wScales []float32) (TensorID, bool) {
	if bias == nil {
		return 0, false
	}
	scales := make([]float32, len(wScales))
	for i, s := range wScales {
		scales[i] = quant.BiasScale(inScale, s)
	}
	q := PerChannel(0, scales)
	if len(scales) == 1 {
		q = PerTensor(scales[0], 0)
	}
	return b.add(Tensor{Name: name + "/bias", DType: Int32, Shape: []int{len(bias)}, Quant: q, Data: Int32Data(bias)}), true
}

// Conv2D adds a convolution of in ([H,W,C], int8) with w ([OutC,KH,KW,C/Groups]) and an optional
// int32 bias (scale inScale*wScale[c], nil for none), producing int8 with parameters out.
func (b *Builder) Conv2D(name string, in TensorID, w Weights, bias []int32, opt Conv2DOptions, out quant.Params) TensorID {
	x := b.tensor(in)
	if opt.StrideH == 0 {
		opt.StrideH = 1
	}
	if opt.StrideW == 0 {
		opt.StrideW = 1
	}
	if opt.Groups == 0 {
		opt.Groups = 1
	}
	shape := []int{1, 1, 1}
	if len(x.Shape) == 3 && len(w.Shape) == 4 && opt.StrideH > 0 && opt.StrideW > 0 {
		shape = []int{ConvOutSize(x.Shape[0], w.Shape[1], opt.StrideH, opt.PadTop, opt.PadBottom),
			ConvOutSize(x.Shape[1], w.Shape[2], opt.StrideW, opt.PadLeft, opt.PadRight), w.Shape[0]}
	} else {
		b.fail("%s: input shape %v and weight shape %v do not fit a 2-D convolution", name, x.Shape, w.Shape)
	}
	wid := b.weights(name, w)
	inputs := []int{int(in), int(wid)}
	if bid, ok := b.bias(name, bias, b.inParams(b.tensor(in)).Scale, w.Scales); ok {
		inputs = append(inputs, int(bid))
	}
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpConv2D, Name: name, Inputs: inputs, Outputs: []int{int(o)}, Act: opt.Act,
		StrideH: opt.StrideH, StrideW: opt.StrideW, PadTop: opt.PadTop, PadLeft: opt.PadLeft,
		PadBottom: opt.PadBottom, PadRight: opt.PadRight, Groups: opt.Groups})
	return o
}

// FullyConnected adds out = act(in · wᵀ + bias) with w of shape [N, K] and in of shape [K].
func (b *Builder) FullyConnected(name string, in TensorID, w Weights, bias []int32, act Activation, out quant.Params) TensorID {
	n := 1
	if len(w.Shape) == 2 {
		n = w.Shape[0]
	} else {
		b.fail("%s: weight shape %v, want [N, K]", name, w.Shape)
	}
	wid := b.weights(name, w)
	inputs := []int{int(in), int(wid)}
	if bid, ok := b.bias(name, bias, b.inParams(b.tensor(in)).Scale, w.Scales); ok {
		inputs = append(inputs, int(bid))
	}
	o := b.act(name, []int{n}, out)
	b.op(Op{Kind: OpFullyConnected, Name: name, Inputs: inputs, Outputs: []int{int(o)}, Act: act})
	return o
}

func (b *Builder) pool(kind OpKind, name string, in TensorID, opt PoolOptions) TensorID {
	x := b.tensor(in)
	p := b.inParams(x)
	if opt.StrideH == 0 {
		opt.StrideH = opt.KernelH
	}
	if opt.StrideW == 0 {
		opt.StrideW = opt.KernelW
	}
	shape := []int{1, 1, 1}
	if len(x.Shape) == 3 && opt.StrideH > 0 && opt.StrideW > 0 {
		shape = []int{ConvOutSize(x.Shape[0], opt.KernelH, opt.StrideH, opt.PadTop, opt.PadBottom),
			ConvOutSize(x.Shape[1], opt.KernelW, opt.StrideW, opt.PadLeft, opt.PadRight), x.Shape[2]}
	} else {
		b.fail("%s: input shape %v or pool options %+v invalid", name, x.Shape, opt)
	}
	o := b.act(name, shape, p)
	b.op(Op{Kind: kind, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)}, Act: opt.Act,
		StrideH: opt.StrideH, StrideW: opt.StrideW, PadTop: opt.PadTop, PadLeft: opt.PadLeft,
		PadBottom: opt.PadBottom, PadRight: opt.PadRight, KernelH: opt.KernelH, KernelW: opt.KernelW})
	return o
}

// MaxPool2D adds a max pool; the output keeps the input's quantization parameters.
func (b *Builder) MaxPool2D(name string, in TensorID, opt PoolOptions) TensorID {
	return b.pool(OpMaxPool2D, name, in, opt)
}

// AvgPool2D adds an average pool (rounded half away from zero, over the valid part of each window);
// the output keeps the input's quantization parameters.
func (b *Builder) AvgPool2D(name string, in TensorID, opt PoolOptions) TensorID {
	return b.pool(OpAvgPool2D, name, in, opt)
}

// Add adds the element-wise sum of two int8 tensors of equal shape, requantized to out.
func (b *Builder) Add(name string, x, y TensorID, act Activation, out quant.Params) TensorID {
	shape := append([]int(nil), b.tensor(x).Shape...)
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpAdd, Name: name, Inputs: []int{int(x), int(y)}, Outputs: []int{int(o)}, Act: act})
	return o
}

// Reshape adds a reshape to the given per-sample shape (same element count and parameters).
func (b *Builder) Reshape(name string, in TensorID, shape []int) TensorID {
	p := b.inParams(b.tensor(in))
	o := b.act(name, append([]int(nil), shape...), p)
	b.op(Op{Kind: OpReshape, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)}})
	return o
}

// Softmax adds a softmax over the last axis with output scale 1/256 and zero point -128.
func (b *Builder) Softmax(name string, in TensorID) TensorID {
	shape := append([]int(nil), b.tensor(in).Shape...)
	o := b.act(name, shape, quant.Params{Scale: SoftmaxScale, ZeroPoint: SoftmaxZeroPoint})
	b.op(Op{Kind: OpSoftmax, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)}})
	return o
}

// Build validates and returns the model. The builder must not be used afterwards.
func (b *Builder) Build() (*Model, error) {
	if b.err != nil {
		return nil, b.err
	}
	m := b.m
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
