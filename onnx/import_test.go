package onnx

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx/onnxpb"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/onnx/testnets"
	"google.golang.org/protobuf/proto"
)

func softmaxRows(x []float32, cols int) []float32 {
	y := make([]float32, len(x))
	for r := 0; r < len(x)/cols; r++ {
		row := x[r*cols : (r+1)*cols]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var s float64
		for i, v := range row {
			e := math.Exp(float64(v - mx))
			y[r*cols+i] = float32(e)
			s += e
		}
		for i := range row {
			y[r*cols+i] = float32(float64(y[r*cols+i]) / s)
		}
	}
	return y
}

// TestImportMatchesOnnxruntime imports a CNN that qatgo did not produce (dsNet, built with the
// protobuf types) and checks that the library's float graph of the imported model computes what
// onnxruntime computes on the original file, within 1e-4 relative, with and without the final
// Softmax.
func TestImportMatchesOnnxruntime(t *testing.T) {
	rt := findORT(t)
	for _, sm := range []bool{false, true} {
		mp := testnets.DSNet(5, sm)
		path := filepath.Join(t.TempDir(), "dsnet.onnx")
		if err := WriteFile(path, mp); err != nil {
			t.Fatal(err)
		}
		m, info, err := ImportFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Softmax != sm || info.Opset != 17 {
			t.Fatalf("info %+v", info)
		}
		const n = 4
		x := randomInput(rand.New(rand.NewPCG(1, 2)), n*784)
		got := floatForward(t, m, x, n)
		if sm {
			got = softmaxRows(got, 10)
		}
		res, err := rt.Run(path, ort.Input{Data: x, Dims: []int{n, 1, 28, 28}}, ort.Options{})
		if err != nil {
			t.Fatal(err)
		}
		closeRel(t, "imported graph vs onnxruntime", got, res.Float32, 1e-4)
	}
}

// TestImportKeepsEveryParameter checks the import against the model's own structure: every
// depthwise/pointwise conv, BN and linear becomes a layer, and the checkpoint round trip rebuilds
// the same model.
func TestImportKeepsEveryParameter(t *testing.T) {
	m, _, err := Import(testnets.DSNet(5, false), "x")
	if err != nil {
		t.Fatal(err)
	}
	count := map[graph.Kind]int{}
	for _, l := range m.Layers {
		count[l.Kind]++
	}
	want := map[graph.Kind]int{graph.KindConv2d: 6, graph.KindBatchNorm: 6, graph.KindAdd: 2, graph.KindLinear: 2,
		graph.KindReLU6: 1, graph.KindReLU: 6, graph.KindMaxPool2d: 1, graph.KindAvgPool2d: 1, graph.KindGlobalAvgPool: 1}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%d %s layers, want %d (layers %v)", count[k], k, v, count)
		}
	}
	ck := &graph.Checkpoint{}
	m.SaveState(ck)
	back, err := graph.ModelFromCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	x := randomInput(rand.New(rand.NewPCG(3, 4)), 2*784)
	closeRel(t, "checkpoint round trip", floatForward(t, back, x, 2), floatForward(t, m, x, 2), 0)
}

// TestImportErrors checks that unsupported and malformed graphs give errors naming the operator,
// the node and the opset.
func TestImportErrors(t *testing.T) {
	edit := func(f func(*onnxpb.ModelProto)) *onnxpb.ModelProto {
		m := testnets.DSNet(1, true)
		f(m)
		return m
	}
	findOp := func(m *onnxpb.ModelProto, op string) *onnxpb.NodeProto {
		for _, n := range m.Graph.Node {
			if n.GetOpType() == op {
				return n
			}
		}
		t.Fatalf("no %s", op)
		return nil
	}
	for _, tc := range []struct {
		name string
		m    *onnxpb.ModelProto
		want []string
	}{
		{"sigmoid", edit(func(m *onnxpb.ModelProto) { findOp(m, "Relu").OpType = proto.String("Sigmoid") }),
			[]string{"Sigmoid", "opset 17", "/Relu_"}},
		{"dilated conv", edit(func(m *onnxpb.ModelProto) {
			n := findOp(m, "Conv")
			n.Attribute = append(n.Attribute, intsAttr("dilations", 2, 2))
		}), []string{"Conv", "dilations", "/Conv_"}},
		{"clip 0..1", edit(func(m *onnxpb.ModelProto) {
			n := findOp(m, "Clip")
			for _, in := range m.Graph.Initializer {
				if in.GetName() == n.Input[2] {
					in.FloatData = []float32{1}
				}
			}
		}), []string{"Clip", "[0, 1]"}},
		{"opset 11", edit(func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = proto.Int64(11) }), []string{"opset 11"}},
		{"custom domain", edit(func(m *onnxpb.ModelProto) { findOp(m, "Relu").Domain = proto.String("com.microsoft") }), []string{"com.microsoft", "Relu"}},
		{"short raw initializer", edit(func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].RawData = m.Graph.Initializer[0].RawData[:5] }), []string{"raw bytes"}},
		{"short float_data", edit(func(m *onnxpb.ModelProto) {
			for _, in := range m.Graph.Initializer {
				if len(in.FloatData) > 1 {
					in.FloatData = in.FloatData[1:]
					return
				}
			}
		}), []string{"float values for dims"}},
		{"missing input", edit(func(m *onnxpb.ModelProto) { findOp(m, "Relu").Input[0] = "nowhere" }), []string{"nowhere"}},
		{"huge dims", edit(func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].Dims = []int64{1 << 20, 1 << 20} }), []string{"elements"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Import(tc.m, "x")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v wraps neither ErrUnsupported nor ErrMalformed", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := Unmarshal([]byte{0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage bytes: %v", err)
	}
}

// FuzzImport feeds arbitrary bytes to Unmarshal and Import: they must return an error or a model,
// never panic or allocate far beyond the input (tensor sizes are checked against the data).
func FuzzImport(f *testing.F) {
	for _, m := range []*onnxpb.ModelProto{testnets.DSNet(1, true), testnets.DSNet(2, false)} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mp, err := Unmarshal(b)
		if err != nil {
			return
		}
		m, _, err := Import(mp, "fuzz")
		if err == nil && m.Err() != nil {
			t.Fatalf("model with error %v returned without error", m.Err())
		}
	})
}
