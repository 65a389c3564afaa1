package export

import (
	"os"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// TestMNISTTargets measures the MNIST targets on a W8A8 QAT checkpoint of a qat model
// (bn-cnn or ggml-cnn, e.g. from examples/mnist) named by $QATGO_EXPORT_CKPT: exported int8
// accuracy within 0.05 points of the fake-quant accuracy and prediction agreement >= 99.9% on the
// 10,000 test images, file about 4x smaller than the float32 parameters, and int4 weights
// (W4A8, calibrated on the same weights) about 8x smaller. Skipped when the variable is unset.
//
//	QATGO_EXPORT_CKPT=out/bn-qat-w8a8/checkpoint.bin go test ./export -run MNISTTargets -v
func TestMNISTTargets(t *testing.T) {
	path := os.Getenv("QATGO_EXPORT_CKPT")
	if path == "" {
		t.Skip("set QATGO_EXPORT_CKPT to a W8A8 QAT checkpoint of bn-cnn or ggml-cnn")
	}
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	mk := map[string]func(uint64) *graph.Model{"bn-cnn": qat.BNCNN, "ggml-cnn": qat.GGMLCNN}[ck.Meta["model"]]
	if mk == nil {
		t.Fatalf("checkpoint model %q", ck.Meta["model"])
	}
	dir, err := mnist.Locate()
	if err != nil {
		t.Skip(err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, qm, err := FromCheckpoint(path, mk(1), qat.W8A8(), Options{})
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
	rep, err := ParityLabeled(p, qm, x, n, y)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%v", rep)
	if d := rep.IntAccuracy - rep.FakeAccuracy; d > 0.0005 || d < -0.0005 {
		t.Errorf("integer accuracy %.4f vs fake-quant %.4f: more than 0.05 points apart", rep.IntAccuracy, rep.FakeAccuracy)
	}
	if rep.Agreement < 0.999 {
		t.Errorf("agreement %.4f < 99.9%%", rep.Agreement)
	}
	size := func(qm *qmodel.Model) (file, weights, weightsF32 int) {
		b, err := qmodel.Encode(qm)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range qm.Tensors {
			if tt.IsConst() && tt.DType != qmodel.Int32 {
				weights += len(tt.Data)
				weightsF32 += 4 * tt.NumElements()
			}
		}
		return len(b), weights, weightsF32
	}
	var floatBytes int
	for _, pp := range p.Model.Params() {
		floatBytes += 4 * pp.Value.Shape().TotalSize()
	}
	f8, w8, wf := size(qm)
	t.Logf("int8 file %d B; float32 parameters %d B (%.2fx); weights %d B vs %d B float32 (%.2fx)",
		f8, floatBytes, float64(floatBytes)/float64(f8), w8, wf, float64(wf)/float64(w8))
	if r := float64(floatBytes) / float64(f8); r < 3.5 {
		t.Errorf("int8 file only %.2fx smaller than float32", r)
	}
	p4, err := qat.Calibrate(p.Model, qat.W4A8LSQ(), train, 4, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	qm4, err := Lower(p4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f4, w4, wf4 := size(qm4)
	t.Logf("int4 (W4A8 PTQ) file %d B (%.2fx smaller than float32 parameters); weights %d B vs %d B float32 (%.2fx)",
		f4, float64(floatBytes)/float64(f4), w4, wf4, float64(wf4)/float64(w4))
	if r := float64(wf4) / float64(w4); r < 7.9 {
		t.Errorf("int4 weights only %.2fx smaller than float32", r)
	}
}
