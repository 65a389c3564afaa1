package onnx

import (
	"os"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/qmodel"
)

// TestOnnxruntimeAccuracy measures the test-set accuracy of an ONNX image classifier in
// onnxruntime: QATGO_ORT_EVAL names the ONNX file (1x28x28 input, pixel/255), QATGO_ORT_DATA the
// data (mnist, the default, or fashion) and QATGO_ORT_QM, optionally, the .qm it was exported
// beside, whose predictions in qatgo's integer runtime are compared image by image (and, for a .qm
// exported with -requant onnxruntime, every output value). For example:
//
//	qatgo export -format onnx -data fashion -o m.onnx float.ckpt
//	QATGO_ORT_EVAL=$PWD/m.onnx QATGO_ORT_DATA=fashion go test -run OnnxruntimeAccuracy -v ./onnx
func TestOnnxruntimeAccuracy(t *testing.T) {
	path := os.Getenv("QATGO_ORT_EVAL")
	if path == "" {
		t.Skip("set QATGO_ORT_EVAL=model.onnx (and QATGO_ORT_DATA=mnist|fashion, QATGO_ORT_QM=model.qm)")
	}
	rt := findORT(t)
	data := os.Getenv("QATGO_ORT_DATA")
	if data == "" {
		data = "mnist"
	}
	dir, err := mnist.DataDir(data)
	if err != nil {
		t.Fatal(err)
	}
	test, err := mnist.LoadTest(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := test.Len()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, n*784)
	y := make([]int, n)
	test.Batch(idx, x, y)
	res, err := rt.Run(path, ort.Input{Data: x, Dims: []int{n, 1, 28, 28}}, ort.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := len(res.Float32) / n
	pred := make([]int, n)
	correct := 0
	for i := range pred {
		pred[i] = infer.Argmax(res.Float32[i*k : (i+1)*k])
		if pred[i] == y[i] {
			correct++
		}
	}
	t.Logf("onnxruntime on %s: %.2f%% (%d/%d %s test images)", path, 100*float64(correct)/float64(n), correct, n, data)
	qmPath := os.Getenv("QATGO_ORT_QM")
	if qmPath == "" {
		return
	}
	qm, err := qmodel.ReadFile(qmPath)
	if err != nil {
		t.Fatal(err)
	}
	md, err := infer.Load(qm)
	if err != nil {
		t.Fatal(err)
	}
	out, err := md.NewSession().Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	agree, qcorrect := 0, 0
	for i := range pred {
		p := infer.Argmax(out[i*k : (i+1)*k])
		if p == pred[i] {
			agree++
		}
		if p == y[i] {
			qcorrect++
		}
	}
	t.Logf("qatgo on %s: %.2f%%; predictions agree with onnxruntime on %d/%d images", qmPath, 100*float64(qcorrect)/float64(n), agree, n)
	if float64(agree) < 0.999*float64(n) {
		t.Errorf("onnxruntime and qatgo agree on %d/%d predictions, want >= 99.9%%", agree, n)
	}
	// A .qm exported with -requant onnxruntime computes onnxruntime's integers: every output equal.
	if rule, _ := qm.Requant(); rule == qmodel.RequantOnnxruntime {
		differ := 0
		for i, v := range out {
			if v != res.Float32[i] {
				differ++
			}
		}
		t.Logf("requant onnxruntime: %d of %d outputs differ", differ, len(out))
		if differ > 0 {
			t.Errorf("requant onnxruntime: %d of %d outputs differ from onnxruntime's, want none", differ, len(out))
		}
	}
}
