package main

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qat"
	"gorgonia.org/tensor"
)

// noise388 is a random (3,8,8) image set with 5 classes.
type noise388 struct{}

func (noise388) Len() int { return 32 }

func (noise388) Batch(idx []int, x []float32, y []int) {
	for b, i := range idx {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for j := 0; j < 192; j++ {
			x[b*192+j] = rng.Float32()
		}
		y[b] = i % 5
	}
}

// residualNet is a model that is not among qat's named ones: a residual block with BatchNorm,
// global average pooling and a 5-class head on (3,8,8) input.
func residualNet() *graph.Model {
	m := graph.NewModel("my-resnet", []int{3, 8, 8}, tensor.Float32, 4)
	m.Conv2d("stem", graph.Conv{Out: 8, Kernel: 3, Pad: 1})
	m.BatchNorm("stem_bn", 0, 0)
	m.ReLU("stem_relu")
	m.Conv2d("branch", graph.Conv{Out: 8, Kernel: 3, Pad: 1, Bias: true})
	m.Add("res", "stem_relu", "branch")
	m.ReLU("res_relu")
	m.MaxPool2d("pool", 2, 2, 0)
	m.GlobalAvgPool("gap")
	m.Linear("head", 5, true)
	return m
}

// TestExportAnyModel exports a checkpoint of a model that only the checkpoint describes: the
// command rebuilds it from the recorded architecture, checks parity on random inputs and writes
// a model the runtime loads.
func TestExportAnyModel(t *testing.T) {
	dir := t.TempDir()
	m := residualNet()
	p, err := qat.Calibrate(m, qat.W8A8(), noise388{}, 2, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &graph.Checkpoint{}
	m.SaveState(c)
	p.SaveState(c)
	ck := filepath.Join(dir, "mine.bin")
	if err := graph.SaveCheckpoint(ck, c); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mine.qm")
	code, stdout, stderr := runMain("export", "-parity", "32", "-o", out, ck)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "uniform random inputs") || !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	md, err := infer.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if md.InputSize() != 192 || len(md.Labels()) != 0 {
		t.Errorf("model input %d, %d labels", md.InputSize(), len(md.Labels()))
	}

	// A float LM checkpoint (no quantizer state) is recognised and refused with a clear message
	// (export_lm_test.go exports a calibrated one).
	lm, err := graph.NewLM("lm", graph.LMConfig{Vocab: 16, Dim: 8, Layers: 1, Heads: 2, Ctx: 4}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	lc := &graph.Checkpoint{}
	lm.SaveState(lc)
	lck := filepath.Join(dir, "lm.bin")
	if err := graph.SaveCheckpoint(lck, lc); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runMain("export", "-parity", "0", "-o", filepath.Join(dir, "lm.qm"), lck)
	if code != exitFailure || !strings.Contains(stderr, "float checkpoint") {
		t.Errorf("LM checkpoint: exit %d, stderr %q", code, stderr)
	}
}
