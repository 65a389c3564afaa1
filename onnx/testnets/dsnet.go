// Package testnets builds float ONNX models node by node with the onnxpb types, the way an exporter
// of another framework writes them, independently of package onnx's writer: test and example inputs
// for the importer (models that qatgo did not produce).
package testnets

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/qatgo/qatgo/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// protoNet builds float ONNX graphs node by node with the onnxpb types, the way an exporter from
// another framework would (independently of FromModel).
type protoNet struct {
	g   *onnxpb.GraphProto
	rng *rand.Rand
	n   int
}

func newProtoNet(seed uint64, input []int64) *protoNet {
	dims := []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}}}
	for _, d := range input {
		dims = append(dims, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	vi := &onnxpb.ValueInfoProto{Name: proto.String("x"), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
	return &protoNet{g: &onnxpb.GraphProto{Name: proto.String("dsnet"), Input: []*onnxpb.ValueInfoProto{vi}},
		rng: rand.New(rand.NewPCG(seed, 99))}
}

func (p *protoNet) name(op string) string {
	p.n++
	return op + "_" + string(rune('a'+p.n%26)) + itoa(p.n)
}

func itoa(i int) string {
	s := ""
	for {
		s = string(rune('0'+i%10)) + s
		if i /= 10; i == 0 {
			return s
		}
	}
}

// init adds a float initializer: raw_data for more than 64 values, float_data otherwise (both encodings).
func (p *protoNet) init(dims []int64, f func(i int) float32) string {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = f(i)
	}
	name := p.name("w")
	t := &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}
	if n > 64 {
		t.RawData = rawFloats(v)
	} else {
		t.FloatData = v
	}
	p.g.Initializer = append(p.g.Initializer, t)
	return name
}

func (p *protoNet) normal(dims []int64, std float64) string {
	return p.init(dims, func(int) float32 { return float32(p.rng.NormFloat64() * std) })
}

func (p *protoNet) node(op string, in []string, attrs ...*onnxpb.AttributeProto) string {
	out := p.name(op)
	p.g.Node = append(p.g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String("/" + out + "/" + op),
		Input: in, Output: []string{out}, Attribute: attrs})
	return out
}

func (p *protoNet) conv(x string, cin, cout, k, stride, pad, group int, bias bool) string {
	w := p.normal([]int64{int64(cout), int64(cin / group), int64(k), int64(k)}, math.Sqrt(2/float64(cin/group*k*k)))
	in := []string{x, w}
	if bias {
		in = append(in, p.normal([]int64{int64(cout)}, 0.1))
	}
	return p.node("Conv", in, intsAttr("kernel_shape", k, k), intsAttr("strides", stride, stride),
		intsAttr("pads", pad, pad, pad, pad), intAttr("group", group))
}

func (p *protoNet) bn(x string, c int) string {
	d := []int64{int64(c)}
	return p.node("BatchNormalization", []string{x,
		p.init(d, func(int) float32 { return 0.5 + p.rng.Float32() }),
		p.normal(d, 0.2), p.normal(d, 0.2),
		p.init(d, func(int) float32 { return 0.5 + p.rng.Float32() })}, floatAttr("epsilon", 1e-3))
}

func (p *protoNet) scalar(v float32) string { return p.init(nil, func(int) float32 { return v }) }

// DSNet is a depthwise-separable residual CNN (MobileNet-like blocks with identity shortcuts) on
// 1x28x28 input, written with ONNX operators the way PyTorch exports them: Conv+BN+Clip(0,6) stem,
// two blocks of depthwise 3x3 + BN + Relu, pointwise 1x1 + BN, residual Add + Relu, MaxPool, a
// strided conv, GlobalAveragePool, Reshape by a Constant shape, MatMul + Add, Relu, Gemm
// (transB 0, alpha) and, when softmax is set, a final Softmax.
func DSNet(seed uint64, softmax bool) *onnxpb.ModelProto {
	p := newProtoNet(seed, []int64{1, 28, 28})
	x := p.node("Clip", []string{p.bn(p.conv("x", 1, 16, 3, 1, 1, 1, true), 16), p.scalar(0), p.scalar(6)})
	for b := 0; b < 2; b++ {
		h := p.node("Relu", []string{p.bn(p.conv(x, 16, 16, 3, 1, 1, 16, false), 16)})
		h = p.bn(p.conv(h, 16, 16, 1, 1, 0, 1, true), 16)
		x = p.node("Relu", []string{p.node("Add", []string{x, h})})
	}
	x = p.node("MaxPool", []string{x}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2))
	x = p.node("Relu", []string{p.bn(p.conv(x, 16, 32, 3, 2, 1, 1, false), 32)})
	x = p.node("AveragePool", []string{x}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 1, 1))
	x = p.node("GlobalAveragePool", []string{x})
	shape := p.name("shape")
	p.g.Node = append(p.g.Node, &onnxpb.NodeProto{OpType: proto.String("Constant"), Name: proto.String("/shape"), Output: []string{shape},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(),
			T: &onnxpb.TensorProto{Dims: []int64{2}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{-1, 32}}}}})
	x = p.node("Reshape", []string{x, shape})
	x = p.node("Add", []string{p.node("MatMul", []string{x, p.normal([]int64{32, 24}, 0.3)}), p.normal([]int64{24}, 0.1)})
	x = p.node("Relu", []string{x})
	x = p.node("Gemm", []string{x, p.normal([]int64{24, 10}, 0.3), p.normal([]int64{1, 10}, 0.1)}, floatAttr("alpha", 0.5), floatAttr("beta", 2))
	if softmax {
		x = p.node("Softmax", []string{x}, intAttr("axis", 1))
	}
	p.g.Output = []*onnxpb.ValueInfoProto{{Name: proto.String(x)}}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), ProducerName: proto.String("hand-built test graph"),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}, Graph: p.g}
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(v))}
}

func intsAttr(name string, v ...int) *onnxpb.AttributeProto {
	d := make([]int64, len(v))
	for i, x := range v {
		d[i] = int64(x)
	}
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: d}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// rawFloats encodes float32 values as little-endian raw_data.
func rawFloats(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
