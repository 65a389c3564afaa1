package export_test

import (
	"io"

	"fmt"
	"github.com/sirupsen/logrus"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	"gorgonia.org/tensor"
)

// stripes is a two-class toy set: horizontal or vertical stripes with noise.
type stripes struct{ n int }

func (s stripes) Len() int { return s.n }

func (s stripes) Batch(idx []int, x []float32, y []int) {
	for b, i := range idx {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		y[b] = i % 2
		for r := 0; r < 8; r++ {
			for c := 0; c < 8; c++ {
				v := 0.3 * rng.Float32()
				if (y[b] == 0 && r%2 == 0) || (y[b] == 1 && c%2 == 0) {
					v += 0.7
				}
				x[b*64+r*8+c] = v
			}
		}
	}
}

// Example trains a tiny CNN with QAT for a few steps, exports it with a parity check, writes the
// integer model file and runs it.
func Example() {
	m := graph.NewModel("stripes", []int{1, 8, 8}, tensor.Float32, 1)
	m.Conv2d("conv", graph.Conv{Out: 4, Kernel: 3, Pad: 1})
	m.BatchNorm("bn", 0, 0)
	m.ReLU("relu")
	m.MaxPool2d("pool", 2, 2, 0)
	m.Flatten("flat")
	m.Linear("fc", 2, true)

	p, _ := qat.Prepare(m, qat.W8A8())
	tr, _ := qat.NewTrainer(qat.Classify(m, stripes{256}), p, qat.Config{BatchSize: 16, EvalBatch: 32, LR: 1e-2, CalibBatches: 2, Logger: quietLogger()})
	defer tr.Close()
	if err := tr.Fit(qat.Images{Data: stripes{32}}); err != nil {
		fmt.Println(err)
		return
	}

	x := make([]float32, 32*64)
	stripes{32}.Batch(seq(32), x, make([]int, 32))
	qm, rep, err := export.Export(p, export.Options{Labels: []string{"horizontal", "vertical"}}, x, 32, export.Thresholds{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("agreement %.0f%%\n", 100*rep.Agreement)

	dir, _ := os.MkdirTemp("", "export-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "stripes.qm")
	if err := qmodel.WriteFile(path, qm); err != nil {
		fmt.Println(err)
		return
	}
	md, err := infer.LoadFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, op := range md.QModel().Ops {
		fmt.Println(op.Kind, op.Name, op.Act)
	}
	// Output:
	// agreement 100%
	// Quantize input none
	// Conv2D conv relu
	// MaxPool2D pool none
	// Reshape flat none
	// FullyConnected fc none
	// Dequantize output none
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// ExampleFromCheckpoint exports a checkpoint written by qat.Trainer (for example by
// examples/mnist) for the architecture it was trained with; `qatgo export` does the same from the
// command line.
func ExampleFromCheckpoint() {
	p, qm, err := export.FromCheckpoint("out/bn-qat-w8a8/checkpoint.bin", qat.BNCNN(1), qat.W8A8(),
		export.Options{Uint8Input: &quant.Params{Scale: 1.0 / 255}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = p // for export.Parity with test images
	if err := qmodel.WriteFile("bn-cnn-w8a8.qm", qm); err != nil {
		fmt.Println(err)
	}
}

// ExampleLower_languageModel calibrates a tiny byte-level language model at W8A8, exports it with
// the same Lower call as a CNN (with calibration token batches), checks the file against the
// fake-quant graph that models every runtime quantization point and runs it.
func ExampleLower_languageModel() {
	const batch, ctx = 2, 8
	lm, _ := graph.NewLM("tiny", graph.LMConfig{Vocab: 256, Dim: 16, Layers: 1, Heads: 2, Ctx: ctx}, tensor.Float32, 1)
	p, _ := qat.Prepare(lm, qat.LMRecipe{WBits: 8, ABits: 8}.QConfig())
	text := []byte("func main() { fmt.Println(\"hello, world\") }\n")
	var calib, targets [][]int
	for o := 0; o < 4; o++ {
		ids, tg := make([]int, batch*ctx), make([]int, batch*ctx)
		for i := range ids {
			ids[i], tg[i] = int(text[(5*o+i)%len(text)]), int(text[(5*o+i+1)%len(text)])
		}
		calib, targets = append(calib, ids), append(targets, tg)
	}
	tr, _ := qat.NewTrainer(&qat.NextTokenTask{LM: lm, CalibIDs: calib, CalibTargets: targets}, p, qat.Config{BatchSize: batch, Logger: quietLogger()})
	defer tr.Close()
	if err := tr.Calibrate(len(calib)); err != nil { // PTQ: observers of the quantizer sites
		fmt.Println(err)
		return
	}
	qm, err := export.Lower(p, export.Options{Calib: calib, Batch: batch})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := export.NewLMEval(p, qm, batch)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ev.Close()
	rep, err := ev.Parity(calib, targets)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("parity:", rep.Check(export.LMThresholds{}))
	rt, _ := infer.LoadLM(qm)
	fmt.Println("context", rt.ContextLength(), "vocabulary", rt.Vocab())
	// Output:
	// parity: <nil>
	// context 8 vocabulary 256
}
