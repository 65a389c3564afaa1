package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/atomicfile"
	"github.com/qatgo/qatgo/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
	"gorgonia.org/tensor"
)

// Opset is the ONNX operator set version the writers use (default domain).
const Opset = 13

// IRVersion is the ONNX IR version the writers use (IR 7 introduced opset 13).
const IRVersion = 7

// Producer is written into the producer_name of models this package writes.
const Producer = "qatgo"

// Names of the graph input and output of written models.
const (
	InputName  = "input"
	OutputName = "output"
	BatchDim   = "N" // symbolic batch dimension of the input and output
)

// WriteOptions control FromModel.
type WriteOptions struct {
	// Softmax appends a Softmax over the classes after the model's last layer.
	Softmax bool
	// Doc is written into the model's doc_string.
	Doc string
}

// FromModel returns the float ONNX model of m in evaluation mode (BatchNorm with running
// statistics, dropout as identity).
func FromModel(m *graph.Model, o WriteOptions) (*onnxpb.ModelProto, error) {
	if err := m.Err(); err != nil {
		return nil, err
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("onnx: model %q has no layers", m.Name)
	}
	b := newBuilder(m.Name)
	b.input(InputName, onnxpb.TensorProto_FLOAT, m.Input)
	// value names: a layer's output tensor is named after the layer.
	val := func(layer string) string {
		if layer == graph.InputName {
			return InputName
		}
		return layer
	}
	last := m.Layers[len(m.Layers)-1].Name
	for _, l := range m.Layers {
		in := make([]string, len(l.Inputs))
		for i, s := range l.Inputs {
			in[i] = val(s)
		}
		out := l.Name
		if l.Name == last && !o.Softmax {
			out = OutputName
		}
		param := func(r graph.Role) (string, error) {
			p := m.LayerParam(l.Name, r)
			if p == nil {
				return "", fmt.Errorf("onnx: layer %q has no %s", l.Name, r)
			}
			b.floatInit(p.Name, p.Value.Shape(), denseFloat32(p.Value))
			return p.Name, nil
		}
		switch l.Kind {
		case graph.KindConv2d:
			w, err := param(graph.RoleWeight)
			if err != nil {
				return nil, err
			}
			ins := []string{in[0], w}
			if l.Bias {
				bn, err := param(graph.RoleBias)
				if err != nil {
					return nil, err
				}
				ins = append(ins, bn)
			}
			b.node("Conv", l.Name, ins, []string{out},
				intsAttr("kernel_shape", l.Kernel, l.Kernel), intsAttr("strides", l.Stride, l.Stride),
				intsAttr("pads", l.Pad, l.Pad, l.Pad, l.Pad), intsAttr("dilations", 1, 1), intAttr("group", l.Groups))
		case graph.KindLinear:
			w, err := param(graph.RoleWeight)
			if err != nil {
				return nil, err
			}
			ins := []string{in[0], w}
			if l.Bias {
				bn, err := param(graph.RoleBias)
				if err != nil {
					return nil, err
				}
				ins = append(ins, bn)
			}
			b.node("Gemm", l.Name, ins, []string{out}, intAttr("transB", 1))
		case graph.KindBatchNorm:
			var ins []string
			for _, r := range []graph.Role{graph.RoleGamma, graph.RoleBeta, graph.RoleRunningMean, graph.RoleRunningVar} {
				n, err := param(r)
				if err != nil {
					return nil, err
				}
				ins = append(ins, n)
			}
			b.node("BatchNormalization", l.Name, append(in[:1:1], ins...), []string{out},
				floatAttr("epsilon", float32(l.Eps)), floatAttr("momentum", float32(1-l.Momentum)))
		case graph.KindReLU:
			b.node("Relu", l.Name, in, []string{out})
		case graph.KindReLU6:
			lo, hi := b.scalarFloat(l.Name+".min", 0), b.scalarFloat(l.Name+".max", 6)
			b.node("Clip", l.Name, []string{in[0], lo, hi}, []string{out})
		case graph.KindMaxPool2d:
			b.node("MaxPool", l.Name, in, []string{out}, intsAttr("kernel_shape", l.Kernel, l.Kernel),
				intsAttr("strides", l.Stride, l.Stride), intsAttr("pads", l.Pad, l.Pad, l.Pad, l.Pad))
		case graph.KindAvgPool2d:
			b.node("AveragePool", l.Name, in, []string{out}, intsAttr("kernel_shape", l.Kernel, l.Kernel),
				intsAttr("strides", l.Stride, l.Stride))
		case graph.KindGlobalAvgPool:
			b.node("GlobalAveragePool", l.Name+".pool", in, []string{l.Name + ".pool"})
			b.node("Flatten", l.Name, []string{l.Name + ".pool"}, []string{out}, intAttr("axis", 1))
		case graph.KindFlatten:
			b.node("Flatten", l.Name, in, []string{out}, intAttr("axis", 1))
		case graph.KindAdd:
			b.node("Add", l.Name, in, []string{out})
		case graph.KindDropout:
			b.node("Identity", l.Name, in, []string{out})
		default:
			return nil, fmt.Errorf("onnx: layer %q: kind %q has no ONNX form", l.Name, l.Kind)
		}
	}
	if o.Softmax {
		b.node("Softmax", "softmax", []string{last}, []string{OutputName}, intAttr("axis", -1))
	}
	b.output(OutputName, onnxpb.TensorProto_FLOAT, m.OutShape())
	mp := b.model()
	mp.DocString = proto.String(o.Doc)
	return mp, nil
}

// Marshal encodes an ONNX model.
func Marshal(m *onnxpb.ModelProto) ([]byte, error) { return proto.Marshal(m) }

// WriteFile encodes m and writes it to path atomically (temp file, fsync, rename).
func WriteFile(path string, m *onnxpb.ModelProto) error {
	b, err := Marshal(m)
	if err != nil {
		return fmt.Errorf("onnx: encoding %s: %w", path, err)
	}
	return atomicfile.Write(path, b)
}

// denseFloat32 returns the elements of a float32 or float64 tensor as float32.
func denseFloat32(t *tensor.Dense) []float32 {
	switch d := t.Data().(type) {
	case []float32:
		return d
	case []float64:
		f := make([]float32, len(d))
		for i, v := range d {
			f[i] = float32(v)
		}
		return f
	}
	return nil
}

// builder accumulates a graph.
type builder struct {
	name string
	g    *onnxpb.GraphProto
}

func newBuilder(name string) *builder {
	return &builder{name: name, g: &onnxpb.GraphProto{Name: proto.String(name)}}
}

func (b *builder) model() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		ProducerName: proto.String(Producer),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:        b.g,
	}
}

// valueInfo describes a tensor of shape [N, perExample...] with a symbolic batch dimension.
func valueInfo(name string, et onnxpb.TensorProto_DataType, perExample []int) *onnxpb.ValueInfoProto {
	dims := []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: BatchDim}}}
	for _, d := range perExample {
		dims = append(dims, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(et)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
}

func (b *builder) input(name string, et onnxpb.TensorProto_DataType, perExample []int) {
	b.g.Input = append(b.g.Input, valueInfo(name, et, perExample))
}

func (b *builder) output(name string, et onnxpb.TensorProto_DataType, perExample []int) {
	b.g.Output = append(b.g.Output, valueInfo(name, et, perExample))
}

func (b *builder) node(op, name string, in, out []string, attrs ...*onnxpb.AttributeProto) {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name),
		Input: in, Output: out, Attribute: attrs})
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, v := range shape {
		d[i] = int64(v)
	}
	return d
}

// floatInit adds a float32 initializer (raw little-endian data).
func (b *builder) floatInit(name string, shape []int, v []float32) string {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw})
	return name
}

// int8Init adds an int8 initializer.
func (b *builder) int8Init(name string, shape []int, v []int8) string {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: raw})
	return name
}

// uint8Init adds a uint8 initializer.
func (b *builder) uint8Init(name string, shape []int, v []uint8) string {
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_UINT8)), RawData: slices.Clone(v)})
	return name
}

// int32Init adds an int32 initializer.
func (b *builder) int32Init(name string, shape []int, v []int32) string {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT32)), RawData: raw})
	return name
}

// int64Init adds an int64 initializer.
func (b *builder) int64Init(name string, shape []int, v []int64) string {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: raw})
	return name
}

// scalarFloat adds a float32 scalar initializer.
func (b *builder) scalarFloat(name string, v float32) string {
	return b.floatInit(name, nil, []float32{v})
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(v))}
}

func intsAttr(name string, v ...int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: dims64(v)}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}
