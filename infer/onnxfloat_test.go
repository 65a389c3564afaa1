package infer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
)

// This file is the test-only helper of the onnxruntime comparison (bench/onnxruntime): it writes
// the float32 equivalent of a CNN .qm model as an ONNX file (weights dequantized: w*scale, bias
// b*s_in*s_w; NCHW layout; Quantize/Dequantize dropped), a trivial Identity model for measuring
// onnxruntime-node's per-call floor, and a few inputs with qatgo's outputs so that the script can
// check that both runtimes compute the same network. It encodes the few protobuf messages it needs
// by hand (no generated types).

// TestWriteFloatONNX writes the files into the directory named by QATGO_ONNX_DIR, from the .qm
// named by QATGO_ONNX_FROM (default: the random-weight MNIST CNN of these tests, or with
// QATGO_ONNX_MODEL=bn the random-weight BN CNN).
func TestWriteFloatONNX(t *testing.T) {
	dir := os.Getenv("QATGO_ONNX_DIR")
	if dir == "" {
		t.Skip("set QATGO_ONNX_DIR=dir (and optionally QATGO_ONNX_FROM=model.qm) to write the ONNX files")
	}
	m := mnistCNN(t, 1)
	if os.Getenv("QATGO_ONNX_MODEL") == "bn" {
		m = bnCNN(t, 1)
	}
	if from := os.Getenv("QATGO_ONNX_FROM"); from != "" {
		var err error
		if m, err = qmodel.ReadFile(from); err != nil {
			t.Fatal(err)
		}
	} else if err := qmodel.WriteFile(filepath.Join(dir, "model.qm"), m); err != nil {
		t.Fatal(err)
	}
	onnx, err := floatONNX(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "identity.onnx"), identityONNX(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Reference inputs (pixels; float32 inputs of float-input models get pixel/255) and
	// qatgo's float outputs. The ONNX model's input is the float value of each pixel.
	md, err := Load(m)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	r := rand.New(rand.NewPCG(9, 9))
	px := make([]byte, n*md.InputSize())
	for i := range px {
		if r.IntN(3) == 0 {
			px[i] = byte(r.IntN(256))
		}
	}
	in := &m.Tensors[md.input]
	ref := struct {
		Shape   []int     `json:"shape"`  // per-sample NHWC
		Inputs  []float32 `json:"inputs"` // the float value of each input element
		Outputs []float32 `json:"outputs"`
	}{Shape: in.Shape, Inputs: make([]float32, len(px))}
	var out []float32
	if md.InputType() == qmodel.Uint8 {
		p := params(in)
		for i, v := range px {
			ref.Inputs[i] = p.Scale * float32(int32(v)-p.ZeroPoint)
		}
		out, err = md.NewSession().RunUint8(px, n)
	} else {
		for i, v := range px {
			ref.Inputs[i] = float32(v) / 255
		}
		out, err = md.NewSession().Run(ref.Inputs, n)
	}
	if err != nil {
		t.Fatal(err)
	}
	ref.Outputs = out
	b, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reference.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFloatONNXEncoding checks the hand-written protobuf encoder on a hand-decoded case.
func TestFloatONNXEncoding(t *testing.T) {
	var p pb
	p.str(4, "Relu")
	p.varint(3, 300)
	want := []byte{0x22, 4, 'R', 'e', 'l', 'u', 0x18, 0xac, 0x02}
	if string(p.b) != string(want) {
		t.Fatalf("got % x, want % x", p.b, want)
	}
	if _, err := floatONNX(mnistCNN(t, 1)); err != nil {
		t.Fatal(err)
	}
}

// pb is a minimal protobuf writer.
type pb struct{ b []byte }

func (p *pb) tag(field, wire int) { p.b = binary.AppendUvarint(p.b, uint64(field<<3|wire)) }
func (p *pb) varint(field int, v int64) {
	p.tag(field, 0)
	p.b = binary.AppendUvarint(p.b, uint64(v))
}
func (p *pb) bytes(field int, v []byte) {
	p.tag(field, 2)
	p.b = binary.AppendUvarint(p.b, uint64(len(v)))
	p.b = append(p.b, v...)
}
func (p *pb) str(field int, s string) { p.bytes(field, []byte(s)) }
func (p *pb) msg(field int, m *pb)    { p.bytes(field, m.b) }
func (p *pb) f32(field int, v float32) {
	p.tag(field, 5)
	p.b = binary.LittleEndian.AppendUint32(p.b, math.Float32bits(v))
}

// ONNX field numbers and enums (onnx.proto).
const (
	onnxFloat = 1 // TensorProto.FLOAT
	onnxInt64 = 7 // TensorProto.INT64
	attrInt   = 2
	attrInts  = 7
)

type onnxGraph struct {
	nodes, inits, ins, outs []*pb
	n                       int
}

func (g *onnxGraph) node(op string, ins []string, out string, attrs ...*pb) {
	n := &pb{}
	for _, s := range ins {
		n.str(1, s)
	}
	n.str(2, out)
	g.n++
	n.str(3, fmt.Sprintf("%s_%d", op, g.n))
	n.str(4, op)
	for _, a := range attrs {
		n.msg(5, a)
	}
	g.nodes = append(g.nodes, n)
}

func attrI(name string, v int64) *pb {
	a := &pb{}
	a.str(1, name)
	a.varint(20, attrInt)
	a.varint(3, v)
	return a
}

func attrIs(name string, v ...int) *pb {
	a := &pb{}
	a.str(1, name)
	a.varint(20, attrInts)
	for _, x := range v {
		a.varint(8, int64(x))
	}
	return a
}

func (g *onnxGraph) initF32(name string, dims []int, v []float32) {
	t := &pb{}
	for _, d := range dims {
		t.varint(1, int64(d))
	}
	t.varint(2, onnxFloat)
	t.str(8, name)
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	t.bytes(9, raw)
	g.inits = append(g.inits, t)
}

// valueInfo describes a float tensor with a symbolic batch dimension N.
func valueInfo(name string, dims []int) *pb {
	shape := &pb{}
	d := &pb{}
	d.str(2, "N")
	shape.msg(1, d)
	for _, x := range dims {
		d := &pb{}
		d.varint(1, int64(x))
		shape.msg(1, d)
	}
	tt := &pb{}
	tt.varint(1, onnxFloat)
	tt.msg(2, shape)
	ty := &pb{}
	ty.msg(1, tt)
	v := &pb{}
	v.str(1, name)
	v.msg(2, ty)
	return v
}

func (g *onnxGraph) model(name string) []byte {
	gr := &pb{}
	for _, n := range g.nodes {
		gr.msg(1, n)
	}
	gr.str(2, name)
	for _, t := range g.inits {
		gr.msg(5, t)
	}
	for _, v := range g.ins {
		gr.msg(11, v)
	}
	for _, v := range g.outs {
		gr.msg(12, v)
	}
	m := &pb{}
	m.varint(1, 8) // IR version 8
	m.str(2, "qatgo test helper")
	m.msg(7, gr)
	op := &pb{}
	op.str(1, "")
	op.varint(2, 13)
	m.msg(8, op)
	return m.b
}

// identityONNX is Identity on a [N,1] float tensor.
func identityONNX() []byte {
	g := &onnxGraph{}
	g.node("Identity", []string{"x"}, "y")
	g.ins = append(g.ins, valueInfo("x", []int{1}))
	g.outs = append(g.outs, valueInfo("y", []int{1}))
	return g.model("identity")
}

// floatONNX converts a CNN of Quantize, Conv2D (groups 1 or depthwise), MaxPool2D, AvgPool2D,
// Reshape (flatten), FullyConnected, Add, Softmax and Dequantize ops to a float32 ONNX graph in
// NCHW layout with input "x" [N,C,H,W] and output "y".
func floatONNX(m *qmodel.Model) ([]byte, error) {
	g := &onnxGraph{}
	name := func(t int) string { return fmt.Sprintf("t%d", t) }
	alias := map[int]int{} // tensors that are another tensor in float (Quantize, Dequantize)
	ref := func(t int) int {
		for {
			a, ok := alias[t]
			if !ok {
				return t
			}
			t = a
		}
	}
	hwc := map[int][3]int{} // flattened tensors whose qatgo order is (H,W,C)
	in := &m.Tensors[m.Inputs[0]]
	if len(in.Shape) != 3 {
		return nil, fmt.Errorf("input shape %v: want HWC", in.Shape)
	}
	g.ins = append(g.ins, valueInfo("x", []int{in.Shape[2], in.Shape[0], in.Shape[1]}))
	alias[m.Inputs[0]] = -1
	name0 := name
	name = func(t int) string {
		if t = ref(t); t == -1 {
			return "x"
		}
		return name0(t)
	}
	clipConsts := false
	// act returns the name the op's node writes and a function that appends the activation
	// node (after the op's node: ONNX nodes are in topological order).
	act := func(out string, a qmodel.Activation) (string, func()) {
		switch a {
		case qmodel.ActReLU:
			return out + "_pre", func() { g.node("Relu", []string{out + "_pre"}, out) }
		case qmodel.ActReLU6:
			if !clipConsts {
				g.initF32("zero_f", nil, []float32{0})
				g.initF32("six_f", nil, []float32{6})
				clipConsts = true
			}
			return out + "_pre", func() { g.node("Clip", []string{out + "_pre", "zero_f", "six_f"}, out) }
		}
		return out, func() {}
	}
	for _, op := range m.Ops {
		x, o := op.Inputs[0], op.Outputs[0]
		xt := &m.Tensors[x]
		switch op.Kind {
		case qmodel.OpQuantize, qmodel.OpDequantize:
			alias[o] = x
		case qmodel.OpConv2D, qmodel.OpFullyConnected:
			wt := &m.Tensors[op.Inputs[1]]
			wv, err := wt.Int8Values()
			if err != nil {
				return nil, err
			}
			sIn := params(xt).Scale
			n := wt.Shape[0]
			sc := func(c int) float32 {
				if len(wt.Quant.Scales) == 1 {
					return wt.Quant.Scales[0]
				}
				return wt.Quant.Scales[c]
			}
			bias := make([]float32, n)
			if len(op.Inputs) == 3 {
				bv, err := m.Tensors[op.Inputs[2]].Int32Values()
				if err != nil {
					return nil, err
				}
				for c := range bias {
					bias[c] = float32(float64(bv[c]) * float64(sIn) * float64(sc(c)))
				}
			}
			k := len(wv) / n
			wn, bn := name0(op.Inputs[1]), name0(op.Inputs[1])+"_b"
			g.initF32(bn, []int{n}, bias)
			pre, finish := act(name0(o), op.Act)
			if op.Kind == qmodel.OpFullyConnected {
				w := make([]float32, len(wv))
				perm, isHWC := hwc[ref(x)]
				for c := 0; c < n; c++ {
					for j := 0; j < k; j++ {
						jj := j // ONNX column of qatgo column j
						if isHWC {
							h, wd, ch := perm[0], perm[1], perm[2]
							y, xx, cc := j/(wd*ch), j/ch%wd, j%ch
							jj = (cc*h+y)*wd + xx
						}
						w[c*k+jj] = float32(wv[c*k+j]) * sc(c)
					}
				}
				g.initF32(wn, []int{n, k}, w)
				g.node("Gemm", []string{name(x), wn, bn}, pre, attrI("transB", 1))
				finish()
				break
			}
			kh, kw := wt.Shape[1], wt.Shape[2]
			cin := wt.Shape[3]
			w := make([]float32, len(wv))
			for c := 0; c < n; c++ {
				for y := 0; y < kh; y++ {
					for xx := 0; xx < kw; xx++ {
						for ci := 0; ci < cin; ci++ {
							w[((c*cin+ci)*kh+y)*kw+xx] = float32(wv[((c*kh+y)*kw+xx)*cin+ci]) * sc(c)
						}
					}
				}
			}
			g.initF32(wn, []int{n, cin, kh, kw}, w)
			g.node("Conv", []string{name(x), wn, bn}, pre,
				attrIs("kernel_shape", kh, kw), attrIs("strides", op.StrideH, op.StrideW),
				attrIs("pads", op.PadTop, op.PadLeft, op.PadBottom, op.PadRight), attrI("group", int64(max(op.Groups, 1))))
			finish()
		case qmodel.OpMaxPool2D, qmodel.OpAvgPool2D:
			pre, finish := act(name0(o), op.Act)
			attrs := []*pb{attrIs("kernel_shape", op.KernelH, op.KernelW), attrIs("strides", op.StrideH, op.StrideW),
				attrIs("pads", op.PadTop, op.PadLeft, op.PadBottom, op.PadRight)}
			kind := "MaxPool"
			if op.Kind == qmodel.OpAvgPool2D {
				kind = "AveragePool"
				attrs = append(attrs, attrI("count_include_pad", 0))
			}
			g.node(kind, []string{name(x)}, pre, attrs...)
			finish()
		case qmodel.OpReshape:
			ot := &m.Tensors[o]
			if len(ot.Shape) != 1 || len(xt.Shape) != 3 {
				return nil, fmt.Errorf("reshape %v -> %v: only flattening HWC is supported", xt.Shape, ot.Shape)
			}
			g.node("Flatten", []string{name(x)}, name0(o), attrI("axis", 1))
			hwc[o] = [3]int{xt.Shape[0], xt.Shape[1], xt.Shape[2]}
		case qmodel.OpAdd:
			pre, finish := act(name0(o), op.Act)
			g.node("Add", []string{name(x), name(op.Inputs[1])}, pre)
			finish()
		case qmodel.OpSoftmax:
			g.node("Softmax", []string{name(x)}, name0(o), attrI("axis", -1))
		default:
			return nil, fmt.Errorf("op %s (%v) not supported", op.Name, op.Kind)
		}
	}
	out := m.Outputs[0]
	g.node("Identity", []string{name(out)}, "y")
	g.outs = append(g.outs, valueInfo("y", m.Tensors[out].Shape))
	return g.model(m.Name), nil
}
