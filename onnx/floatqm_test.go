package onnx

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/onnx/onnxpb"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/onnx/testnets"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// benchQModel returns a W8A8 integer model of ggml's MNIST CNN (with arch "bn" the BN CNN,
// BatchNorm folded; with "dsnet" the imported depthwise-separable residual CNN of
// testnets.DSNet) with random weights calibrated on 2 x 64 MNIST training images; uint8 makes its
// input the image bytes.
func benchQModel(t *testing.T, arch string, uint8In bool) *qmodel.Model {
	t.Helper()
	dir, err := mnist.Locate()
	if err != nil {
		t.Skipf("MNIST not found: %v", err)
	}
	train, err := mnist.LoadTrain(dir)
	if err != nil {
		t.Fatal(err)
	}
	var m *graph.Model
	switch arch {
	case "bn":
		m = qat.BNCNN(5)
	case "dsnet":
		if m, _, err = Import(testnets.DSNet(11, false), "dsnet"); err != nil {
			t.Fatal(err)
		}
	case "", "ggml":
		m = qat.GGMLCNN(4)
	default:
		t.Fatalf("unknown bench model %q (ggml, bn or dsnet)", arch)
	}
	if arch != "dsnet" {
		randomize(m, rand.New(rand.NewPCG(4, 4)))
	}
	p, err := qat.Calibrate(m, qat.W8A8(), train, 2, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	opt := export.Options{}
	if uint8In {
		opt.Uint8Input = &quant.Params{Scale: 1.0 / 255}
	}
	qm, err := export.Lower(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	return qm
}

// benchInputs returns n deterministic sparse byte images for qm and the float value of each
// input element (HWC): scale*(byte-zero_point) for a uint8 input, byte/255 for a float one.
func benchInputs(md *infer.Model, n int) ([]byte, []float32) {
	r := rand.New(rand.NewPCG(9, 9))
	px := make([]byte, n*md.InputSize())
	for i := range px {
		if r.IntN(3) == 0 {
			px[i] = byte(r.IntN(256))
		}
	}
	x := make([]float32, len(px))
	in := &md.QModel().Tensors[md.QModel().Inputs[0]]
	for i, v := range px {
		x[i] = float32(v) / 255
		if md.InputType() == qmodel.Uint8 {
			x[i] = in.Quant.Scales[0] * float32(int32(v)-in.Quant.ZeroPoints[0])
		}
	}
	return px, x
}

// hwcToNCHW reorders n samples of shape (h,w,c) to NCHW.
func hwcToNCHW(x []float32, n, h, w, c int) []float32 {
	y := make([]float32, len(x))
	for b := 0; b < n; b++ {
		for i := 0; i < h*w; i++ {
			for ch := 0; ch < c; ch++ {
				y[((b*c+ch)*h*w)+i] = x[(b*h*w+i)*c+ch]
			}
		}
	}
	return y
}

// TestFloatFromQModel checks the float network of an integer model in onnxruntime against
// qatgo's integer runtime on the same inputs (uint8- and float-input models): the float network
// computes what the integer one approximates, so the argmax agrees on nearly every input and the
// outputs lie within a few output LSB.
func TestFloatFromQModel(t *testing.T) {
	rt := findORT(t)
	for _, tc := range []struct {
		arch  string
		uint8 bool
	}{{"ggml", true}, {"bn", false}} {
		qm := benchQModel(t, tc.arch, tc.uint8)
		mp, err := FloatFromQModel(qm)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range mp.GetGraph().GetNode() {
			if op := nd.GetOpType(); op == "QuantizeLinear" || op == "DequantizeLinear" {
				t.Fatalf("%s: float graph has a %s node", tc.arch, op)
			}
		}
		path := filepath.Join(t.TempDir(), "float.onnx")
		if err := WriteFile(path, mp); err != nil {
			t.Fatal(err)
		}
		md, err := infer.Load(qm)
		if err != nil {
			t.Fatal(err)
		}
		const n = 64
		px, x := benchInputs(md, n)
		var want []float32
		if tc.uint8 {
			want, err = md.NewSession().RunUint8(px, n)
		} else {
			want, err = md.NewSession().Run(x, n)
		}
		if err != nil {
			t.Fatal(err)
		}
		sh := md.InputShape()
		res, err := rt.Run(path, ort.Input{Data: hwcToNCHW(x, n, sh[0], sh[1], sh[2]), Dims: []int{n, sh[2], sh[0], sh[1]}}, ort.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var scale float32
		for _, op := range qm.Ops {
			if op.Kind == qmodel.OpDequantize && op.Outputs[0] == qm.Outputs[0] {
				scale = qm.Tensors[op.Inputs[0]].Quant.Scales[0]
			}
		}
		k := len(want) / n
		agree, worst := 0, 0.0
		for i := 0; i < n; i++ {
			if infer.Argmax(res.Float32[i*k:(i+1)*k]) == infer.Argmax(want[i*k:(i+1)*k]) {
				agree++
			}
		}
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(res.Float32[i]-want[i]))/float64(scale))
		}
		t.Logf("%s (uint8 input %v): argmax agrees on %d/%d, largest difference %.2f output LSB", tc.arch, tc.uint8, agree, n, worst)
		if agree < n-2 || worst > 8 {
			t.Errorf("%s: float network vs integer runtime: %d/%d agree, %.2f LSB apart", tc.arch, agree, n, worst)
		}
	}
}

// TestWriteBenchFiles writes the inputs of bench/onnxruntime/compare.js into the directory named
// by QATGO_ONNX_DIR: model.qm (unless QATGO_ONNX_FROM names a .qm; QATGO_ONNX_MODEL=bn picks the
// BN CNN instead of ggml's, dsnet the depthwise-separable residual CNN with a float input), its
// float network model.onnx (FloatFromQModel), for a float-input model its QDQ form qdq.onnx
// (FromQModel, which onnxruntime runs with its int8 kernels), identity.onnx (for
// onnxruntime-node's per-call floor) and reference.json (64 inputs, per-sample HWC, and qatgo's
// outputs).
func TestWriteBenchFiles(t *testing.T) {
	dir := os.Getenv("QATGO_ONNX_DIR")
	if dir == "" {
		t.Skip("set QATGO_ONNX_DIR=dir (and optionally QATGO_ONNX_FROM=model.qm, QATGO_ONNX_MODEL=bn) to write the files")
	}
	var qm *qmodel.Model
	if from := os.Getenv("QATGO_ONNX_FROM"); from != "" {
		var err error
		if qm, err = qmodel.ReadFile(from); err != nil {
			t.Fatal(err)
		}
	} else {
		arch := os.Getenv("QATGO_ONNX_MODEL")
		qm = benchQModel(t, arch, arch != "dsnet")
		if err := qmodel.WriteFile(filepath.Join(dir, "model.qm"), qm); err != nil {
			t.Fatal(err)
		}
	}
	mp, err := FloatFromQModel(qm)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "model.onnx"), mp); err != nil {
		t.Fatal(err)
	}
	if qm.Tensors[qm.Inputs[0]].DType == qmodel.Float32 {
		qdq, err := FromQModel(qm)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(filepath.Join(dir, "qdq.onnx"), qdq); err != nil {
			t.Fatal(err)
		}
	}
	b := newBuilder("identity")
	b.input(InputName, onnxpb.TensorProto_FLOAT, []int{1})
	b.node("Identity", OutputName, []string{InputName}, []string{OutputName})
	b.output(OutputName, onnxpb.TensorProto_FLOAT, []int{1})
	if err := WriteFile(filepath.Join(dir, "identity.onnx"), b.model()); err != nil {
		t.Fatal(err)
	}
	md, err := infer.Load(qm)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	px, x := benchInputs(md, n)
	var out []float32
	if md.InputType() == qmodel.Uint8 {
		out, err = md.NewSession().RunUint8(px, n)
	} else {
		out, err = md.NewSession().Run(x, n)
	}
	if err != nil {
		t.Fatal(err)
	}
	ref, err := json.Marshal(struct {
		Shape   []int     `json:"shape"`  // per-sample HWC
		Inputs  []float32 `json:"inputs"` // the float value of each input element
		Outputs []float32 `json:"outputs"`
	}{md.InputShape(), x, out})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reference.json"), ref, 0o644); err != nil {
		t.Fatal(err)
	}
}
