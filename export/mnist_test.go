package export

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qatgo/qatgo/convop"
	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	G "gorgonia.org/gorgonia"
)

// useConvop builds graphs with package convop's Conv2d, MaxPool2D and ReLU, as examples/mnist
// does by default, and returns the function that restores the previous implementations.
func useConvop() func() {
	c, p, r := graph.Conv2dImpl, graph.MaxPool2DImpl, graph.ReLUImpl
	graph.Conv2dImpl = func(x, w *G.Node, pad, stride int) (*G.Node, error) {
		return convop.Conv2d(x, w, []int{pad, pad}, []int{stride, stride})
	}
	graph.MaxPool2DImpl = convop.MaxPool2D
	graph.ReLUImpl = convop.ReLU
	return func() { graph.Conv2dImpl, graph.MaxPool2DImpl, graph.ReLUImpl = c, p, r }
}

// quickCheckpoint trains examples/mnist's recipe at a small size and returns the path of its W8A8
// QAT checkpoint: the BN CNN, one float epoch and one W8A8 QAT epoch (BN frozen after 60% and
// observers after 80% of the QAT steps) on the first trainImages training images.
func quickCheckpoint(t *testing.T, train *mnist.Set, trainImages int) string {
	t.Helper()
	train = train.Subset(trainImages)
	m := qat.BNCNN(1)
	ft, err := qat.NewTrainer(qat.Classify(m, train), nil, qat.Config{BatchSize: 32, LR: 3e-3, Schedule: qat.CosineLR, Seed: 1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ft.Fit(qat.Images{Data: train, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	ft.Close()
	p, err := qat.Prepare(m, qat.W8A8())
	if err != nil {
		t.Fatal(err)
	}
	steps := int64(train.Len() / 32)
	dir := t.TempDir()
	qt, err := qat.NewTrainer(qat.Classify(m, train), p, qat.Config{BatchSize: 32, LR: 1e-3, Schedule: qat.CosineLR, Seed: 2, Logger: quiet(),
		BNFreeze: steps * 6 / 10, ObserverFreeze: steps * 8 / 10, CalibBatches: 4, CheckpointDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := qt.Fit(qat.Images{Data: train, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	qt.Close()
	return filepath.Join(dir, "checkpoint.bin")
}

// quickImages is the number of training images of the checkpoint TestMNISTExportParity trains.
const quickImages = 4000

// TestMNISTExportParity backs the README's export-parity figures: a W8A8 QAT checkpoint of the
// BN CNN, exported to the integer model, against its fake-quant graph on the full 10,000-image
// MNIST test set. It asserts that the integer runtime's accuracy is within 0.05 points of the
// fake-quant accuracy, that at least 99.9% of the predictions agree, that every layer alone is
// within 1 LSB and that at least 99.9% of every layer's elements are within 1 LSB end to end,
// that the int8 file is about 4x smaller than the float32 parameters and that int4 weights
// (W4A8, calibrated on the same weights) are 8x smaller.
//
// The checkpoint is trained inside the test at a -quick-like size (quickImages = 4,000 training
// images, a few seconds); set QATGO_EXPORT_CKPT to a W8A8 QAT checkpoint of bn-cnn or ggml-cnn (e.g. from
// examples/mnist) to measure a fully trained model instead:
//
//	QATGO_EXPORT_CKPT=out/bn-qat-w8a8/checkpoint.bin go test ./export -run MNISTExportParity -v
func TestMNISTExportParity(t *testing.T) {
	defer useConvop()()
	dir, err := mnist.Locate()
	if err != nil {
		t.Fatalf("MNIST (module %s) not found: %v", mnist.ModulePath, err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := os.Getenv("QATGO_EXPORT_CKPT")
	if path == "" {
		st := time.Now()
		path = quickCheckpoint(t, train, quickImages)
		t.Logf("trained a quick W8A8 checkpoint on %d images in %v", quickImages, time.Since(st).Round(time.Millisecond))
	}
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	mk := map[string]func(uint64) *graph.Model{"bn-cnn": qat.BNCNN, "ggml-cnn": qat.GGMLCNN}[ck.Meta["model"]]
	if mk == nil {
		t.Fatalf("checkpoint model %q", ck.Meta["model"])
	}
	p, qm, err := FromCheckpoint(path, mk(1), qat.W8A8(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := test.Len()
	if n != 10000 {
		t.Fatalf("MNIST test set has %d images, want 10,000", n)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, n*784)
	y := make([]int, n)
	test.Batch(idx, x, y)
	st := time.Now()
	rep, err := ParityLabeled(p, qm, x, n, y)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("parity on %d images in %v\n%v", n, time.Since(st).Round(time.Millisecond), rep)
	if d := rep.IntAccuracy - rep.FakeAccuracy; d > 0.0005 || d < -0.0005 {
		t.Errorf("integer accuracy %.4f vs fake-quant %.4f: more than 0.05 points apart", rep.IntAccuracy, rep.FakeAccuracy)
	}
	if err := rep.Check(Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLocalLSB: 1}); err != nil {
		t.Error(err)
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
	if r := float64(wf) / float64(w8); r < 3.99 {
		t.Errorf("int8 weights only %.2fx smaller than float32", r)
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
