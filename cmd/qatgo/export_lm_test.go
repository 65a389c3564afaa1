package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

// calibratedLMCheckpoint trains a tiny byte LM for a few steps on the text file, calibrates it at W8A8
// (PTQ) and writes the checkpoint; it also returns the float checkpoint's path.
func calibratedLMCheckpoint(t *testing.T, dir, textFile string) (quant, float string) {
	t.Helper()
	b, err := os.ReadFile(textFile)
	if err != nil {
		t.Fatal(err)
	}
	var tk text.ByteTokenizer
	s, err := text.NewSampler(tk.Encode(b), 4, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := graph.NewLM("tiny", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 16}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := qat.Config{BatchSize: 4, LR: 1e-2, Beta2: 0.95, ClipNorm: 1, Logger: log, Steps: 20}
	ft, err := qat.NewTrainer(&qat.NextTokenTask{LM: lm, Train: s.Next}, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	if err := ft.Fit(nil); err != nil {
		t.Fatal(err)
	}
	float = filepath.Join(dir, "float.ckpt")
	if err := ft.SaveCheckpoint(float); err != nil {
		t.Fatal(err)
	}
	p, err := qat.Prepare(lm, qat.LMRecipe{WBits: 8, ABits: 8}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	x, y := s.Next(1000)
	qt, err := qat.NewTrainer(&qat.NextTokenTask{LM: lm, CalibIDs: [][]int{x}, CalibTargets: [][]int{y}}, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer qt.Close()
	if err := qt.Calibrate(1); err != nil {
		t.Fatal(err)
	}
	quant = filepath.Join(dir, "w8a8.ckpt")
	if err := qt.SaveCheckpoint(quant); err != nil {
		t.Fatal(err)
	}
	return quant, float
}

// TestExportLMCommand: `qatgo export` lowers a calibrated LM checkpoint to a .qm file that
// infer.LoadLMFile runs, printing the parity table; a float LM checkpoint is a clear error.
func TestExportLMCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "text.txt")
	var sb strings.Builder
	for i := 0; i < 200; i++ {
		sb.WriteString("func (b *Buffer) Len() int { return len(b.buf) - b.off }\n")
	}
	if err := os.WriteFile(src, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, fl := calibratedLMCheckpoint(t, dir, src)
	out := filepath.Join(dir, "tiny.qm")
	code, stdout, stderr := runMain("export", "-text", src, "-calib-batches", "2", "-parity", "16", "-o", out, ck)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "blk0.attn.wq") || !strings.Contains(stdout, "argmax agreement") || !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("output:\n%s", stdout)
	}
	lm, err := infer.LoadLMFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if lm.Vocab() != 256 || lm.ContextLength() != 16 || lm.QModel().Meta["qconfig"] == "" {
		t.Errorf("vocab %d ctx %d meta %v", lm.Vocab(), lm.ContextLength(), lm.QModel().Meta)
	}
	code, _, stderr = runMain("export", "-text", src, "-o", filepath.Join(dir, "f.qm"), fl)
	if code != 1 || !strings.Contains(stderr, "QConfig") {
		t.Errorf("float LM checkpoint: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.qm")); err == nil {
		t.Error("a file was written for a float checkpoint")
	}
}
