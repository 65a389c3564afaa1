package qmodel

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/qatgo/qatgo/quant"
)

// DType is the element type of a tensor.
type DType uint8

// The element types. The numeric values are the file encoding.
const (
	Float32 DType = 1 // IEEE 754 binary32, 4 bytes little-endian
	Int8    DType = 2 // signed 8-bit
	Uint8   DType = 3 // unsigned 8-bit
	Int32   DType = 4 // signed 32-bit, 4 bytes little-endian (biases)
	Int4    DType = 5 // signed 4-bit, two per byte, element 2i in the low nibble (quant.PackInt4)
)

// String returns the lower-case type name, e.g. "int8".
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int8:
		return "int8"
	case Uint8:
		return "uint8"
	case Int32:
		return "int32"
	case Int4:
		return "int4"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Valid reports whether d is one of the defined types.
func (d DType) Valid() bool { return d >= Float32 && d <= Int4 }

// Bits returns the width of one element in bits (0 for an invalid type).
func (d DType) Bits() int {
	switch d {
	case Float32, Int32:
		return 32
	case Int8, Uint8:
		return 8
	case Int4:
		return 4
	}
	return 0
}

// DataSize returns the number of bytes that n elements of type d occupy in the file.
func (d DType) DataSize(n int) int {
	switch d.Bits() {
	case 32:
		return 4 * n
	case 8:
		return n
	case 4:
		return (n + 1) / 2
	}
	return 0
}

// levelRange is the range of integer levels (and so of zero points) of a quantized type.
func (d DType) levelRange() (quant.Range, bool) {
	switch d {
	case Int8:
		return quant.Signed(8), true
	case Uint8:
		return quant.Unsigned(8), true
	case Int4:
		return quant.Signed(4), true
	case Int32:
		return quant.Range{Min: math.MinInt32, Max: math.MaxInt32}, true
	}
	return quant.Range{}, false
}

// QParams are the quantization parameters of a tensor: real = Scales[i]*(q-ZeroPoints[i]).
// Axis is -1 for per-tensor parameters (one scale and zero point) or the axis of the shape along
// which Scales and ZeroPoints vary (len == Shape[Axis]).
type QParams struct {
	Scales     []float32
	ZeroPoints []int32
	Axis       int
}

// PerTensor returns per-tensor quantization parameters.
func PerTensor(scale float32, zeroPoint int32) *QParams {
	return &QParams{Scales: []float32{scale}, ZeroPoints: []int32{zeroPoint}, Axis: -1}
}

// PerChannel returns per-channel parameters along axis with zero points 0 (symmetric weights).
func PerChannel(axis int, scales []float32) *QParams {
	return &QParams{Scales: append([]float32(nil), scales...), ZeroPoints: make([]int32, len(scales)), Axis: axis}
}

// Params returns the per-tensor parameters (the first scale and zero point).
func (q *QParams) Params() quant.Params {
	return quant.Params{Scale: q.Scales[0], ZeroPoint: q.ZeroPoints[0]}
}

// Tensor is one tensor of a model. Data is nil for activations and holds the little-endian bytes of
// a constant (DType.DataSize(NumElements) bytes).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Quant *QParams // nil: not quantized (float32 tensors)
	Data  []byte
}

// NumElements returns the product of the shape.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// IsConst reports whether the tensor is a constant (has data).
func (t *Tensor) IsConst() bool { return t.Data != nil }

// Int8Values returns the elements of an int8 or int4 constant as int8 (int4 unpacked).
func (t *Tensor) Int8Values() ([]int8, error) {
	n := t.NumElements()
	if len(t.Data) != t.DType.DataSize(n) {
		return nil, fmt.Errorf("qmodel: tensor %q: %d data bytes, want %d", t.Name, len(t.Data), t.DType.DataSize(n))
	}
	switch t.DType {
	case Int8:
		out := make([]int8, n)
		for i, b := range t.Data {
			out[i] = int8(b)
		}
		return out, nil
	case Int4:
		return quant.UnpackInt4(make([]int8, n), t.Data, n), nil
	}
	return nil, fmt.Errorf("qmodel: tensor %q is %v, not int8 or int4", t.Name, t.DType)
}

// Int32Values returns the elements of an int32 constant.
func (t *Tensor) Int32Values() ([]int32, error) {
	n := t.NumElements()
	if t.DType != Int32 || len(t.Data) != 4*n {
		return nil, fmt.Errorf("qmodel: tensor %q is not an int32 constant of %d elements", t.Name, n)
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Float32Values returns the elements of a float32 constant.
func (t *Tensor) Float32Values() ([]float32, error) {
	n := t.NumElements()
	if t.DType != Float32 || len(t.Data) != 4*n {
		return nil, fmt.Errorf("qmodel: tensor %q is not a float32 constant of %d elements", t.Name, n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Int8Data returns the bytes of int8 values.
func Int8Data(v []int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

// Int4Data returns int4 values (each in [-8,7]) packed two per byte.
func Int4Data(v []int8) []byte { return quant.PackInt4(make([]byte, (len(v)+1)/2), v) }

// Int32Data returns the little-endian bytes of int32 values.
func Int32Data(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// Float32Data returns the little-endian bytes of float32 values.
func Float32Data(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// OpKind is the kind of an op. The numeric values are the file encoding.
type OpKind uint8

// The op kinds. Inputs and outputs (tensor indices) per kind:
//
//	Quantize        in: x (float32, or uint8 with per-tensor qparams)      out: int8
//	Conv2D          in: x int8 [H,W,C], weights int8/int4 [OutC,KH,KW,C/Groups], optional bias int32 [OutC]   out: int8 [OH,OW,OutC]
//	FullyConnected  in: x int8 [K], weights int8/int4 [N,K], optional bias int32 [N]   out: int8 [N]
//	MaxPool2D       in: x int8 [H,W,C]   out: int8 [OH,OW,C], same qparams
//	AvgPool2D       in: x int8 [H,W,C]   out: int8 [OH,OW,C], same qparams
//	Add             in: a, b int8 (same shape)   out: int8
//	Reshape         in: x int8   out: int8, same element count and qparams
//	Softmax         in: x int8   out: int8, scale 1/256, zero point -128 (over the last axis)
//	Dequantize      in: x int8   out: float32
const (
	OpQuantize       OpKind = 1
	OpConv2D         OpKind = 2
	OpFullyConnected OpKind = 3
	OpMaxPool2D      OpKind = 4
	OpAvgPool2D      OpKind = 5
	OpAdd            OpKind = 6
	OpReshape        OpKind = 7
	OpSoftmax        OpKind = 8
	OpDequantize     OpKind = 9
)

var opNames = [...]string{"", "Quantize", "Conv2D", "FullyConnected", "MaxPool2D", "AvgPool2D", "Add", "Reshape", "Softmax", "Dequantize"}

// String returns the op name, e.g. "Conv2D".
func (k OpKind) String() string {
	if k >= 1 && int(k) < len(opNames) {
		return opNames[k]
	}
	if n, ok := lmOpName(k); ok {
		return n
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Activation is a fused activation function, applied as the clamp bounds of the output.
type Activation uint8

// The fused activations. The numeric values are the file encoding.
const (
	ActNone  Activation = 0
	ActReLU  Activation = 1
	ActReLU6 Activation = 2
)

// String returns "none", "relu" or "relu6".
func (a Activation) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActReLU:
		return "relu"
	case ActReLU6:
		return "relu6"
	}
	return fmt.Sprintf("act(%d)", uint8(a))
}

// Op is one operation. Inputs and Outputs are tensor indices. Strides and pads apply to Conv2D and the
// pools; KernelH/KernelW to the pools only (a convolution's kernel size is its weight shape); Groups
// to Conv2D only (1, or InC for depthwise). Fields that do not apply to the kind must be zero.
type Op struct {
	Kind    OpKind
	Name    string
	Inputs  []int
	Outputs []int
	Act     Activation

	StrideH, StrideW                     int
	PadTop, PadLeft, PadBottom, PadRight int
	KernelH, KernelW                     int
	Groups                               int

	LM LMAttrs // language-model ops only (lm.go)
}

// Model is an integer model. Inputs and Outputs are tensor indices of the model's inputs and
// outputs. Labels optionally name the output classes. Meta holds free-form key/value metadata
// (for example the training accuracy); it is encoded sorted by key.
type Model struct {
	Name     string
	Producer string
	Inputs   []int
	Outputs  []int
	Labels   []string
	Meta     map[string]string
	Tensors  []Tensor
	Ops      []Op
}

// TensorByName returns the index of the tensor with the given name, or -1.
func (m *Model) TensorByName(name string) int {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return i
		}
	}
	return -1
}

// ConstBytes returns the total size of the constant tensors' data in bytes.
func (m *Model) ConstBytes() int {
	n := 0
	for i := range m.Tensors {
		n += len(m.Tensors[i].Data)
	}
	return n
}

// ActivationRange returns the clamp bounds [lo, hi] in the int8 output domain for a fused activation
// on an output with the given per-tensor parameters: none gives [-128,127], ReLU raises lo to the level
// of real 0, ReLU6 also lowers hi to the level of real 6 (both computed with quant.QuantizeValue).
func ActivationRange(act Activation, out quant.Params) (lo, hi int32) {
	r := quant.Signed(8)
	lo, hi = r.Min, r.Max
	switch act {
	case ActReLU:
		lo = quant.QuantizeValue(float32(0), out.Scale, out.ZeroPoint, r.Min, r.Max)
	case ActReLU6:
		lo = quant.QuantizeValue(float32(0), out.Scale, out.ZeroPoint, r.Min, r.Max)
		hi = quant.QuantizeValue(float32(6), out.Scale, out.ZeroPoint, r.Min, r.Max)
	}
	return lo, hi
}

// ConvMultipliers derives the per-output-channel requantization multipliers of a Conv2D or
// FullyConnected op: M[c] = inScale*wScales[c]/outScale (computed in float64), quantized with
// quant.QuantizeMultiplier. A single weight scale is expanded to n channels.
func ConvMultipliers(inScale float32, wScales []float32, outScale float32, n int) ([]quant.Multiplier, error) {
	if len(wScales) != 1 && len(wScales) != n {
		return nil, fmt.Errorf("qmodel: %d weight scales for %d channels", len(wScales), n)
	}
	out := make([]quant.Multiplier, n)
	for c := range out {
		s := wScales[0]
		if len(wScales) == n {
			s = wScales[c]
		}
		m, err := quant.QuantizeMultiplier(float64(inScale) * float64(s) / float64(outScale))
		if err != nil {
			return nil, fmt.Errorf("qmodel: channel %d: %w", c, err)
		}
		out[c] = m
	}
	return out, nil
}

// RescaleMultiplier derives the multiplier inScale/outScale used to move a value from one scale to
// another (Quantize from uint8).
func RescaleMultiplier(inScale, outScale float32) (quant.Multiplier, error) {
	return quant.QuantizeMultiplier(float64(inScale) / float64(outScale))
}

// AddLeftShift is the left shift applied to both inputs of Add before rescaling (TFLite uses 20 for int8).
const AddLeftShift = 20

// AddMultipliers derives the three multipliers of Add (TFLite's scheme): with s = 2*max(sA, sB),
// each input (q-z) << AddLeftShift is multiplied by sA/s resp. sB/s, the sum by s/(2^AddLeftShift*sOut).
func AddMultipliers(sA, sB, sOut float32) (a, b, out quant.Multiplier, err error) {
	s := 2 * math.Max(float64(sA), float64(sB))
	if a, err = quant.QuantizeMultiplier(float64(sA) / s); err != nil {
		return
	}
	if b, err = quant.QuantizeMultiplier(float64(sB) / s); err != nil {
		return
	}
	out, err = quant.QuantizeMultiplier(s / (float64(int64(1)<<AddLeftShift) * float64(sOut)))
	return
}

// ConvOutSize returns the output size along one spatial axis: (in + padBefore + padAfter - k)/stride + 1.
func ConvOutSize(in, k, stride, padBefore, padAfter int) int {
	return (in+padBefore+padAfter-k)/stride + 1
}

// SoftmaxScale and SoftmaxZeroPoint are the required output parameters of Softmax (TFLite's).
const (
	SoftmaxScale     = float32(1.0 / 256)
	SoftmaxZeroPoint = -128
)
