package main

import (
	"io"
	"math"
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

func TestParseRuns(t *testing.T) {
	es, err := parseRuns("ptq:w8a8, qat:w4a8:smooth:hadamard", options{group: 32, headBits: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].qat || es[0].recipe.LearnW || !es[1].qat || !es[1].recipe.LearnW || !es[1].smooth || !es[1].rotate ||
		es[1].recipe.WBits != 4 || es[1].recipe.ABits != 8 {
		t.Fatalf("parsed %+v", es)
	}
	for _, bad := range []string{"ptq", "foo:w8a8", "ptq:8", "qat:w4a8:rotate", "ptq:w4a4:spin", "qat:w4a4:spin:quarot", "ptq:w4a4:hadamard:quarot", "qat:w4a8:gptq", "ptq:w8a8:gptq"} {
		if _, err := parseRuns(bad, options{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestPipelineSmall runs the whole example (float training, PTQ, QAT with SmoothQuant and
// Hadamard, sampling) on a tiny model and corpus and checks that training lowers the loss.
func TestPipelineSmall(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 400; i++ {
		b.WriteString("func f() int { return 42 }\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "a.go"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-data", dir, "-dim", "16", "-heads", "2", "-hidden", "32", "-ctx", "16", "-batch", "4",
		"-steps", "60", "-qat-steps", "10", "-eval-batches", "2", "-calib", "2", "-gen", "8", "-group", "8",
		"-ckpt", filepath.Join(dir, "f.ckpt"), "-out", filepath.Join(dir, "out"), "-runs", "ptq:w8a8,ptq:w4a4:smooth:hadamard,qat:w4a8:hadamard,ptq:w4a4:quarot,qat:w4a4:spin,ptq:w3a8:gptq"})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	stdout := os.Stdout
	os.Stdout, _ = os.Open(os.DevNull)
	rows, err := run(o, log)
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	// the W8A8 run is exported: an integer-runtime row right after it, close to its fake-quant
	// loss, and a model file that the runtime loads
	for i, r := range rows {
		if r.bits == "W8A8" && r.method == "PTQ" {
			if i+1 >= len(rows) || !strings.Contains(rows[i+1].method, "integer runtime") || math.Abs(rows[i+1].loss-r.loss)/r.loss > 0.02 {
				t.Fatalf("rows %+v", rows)
			}
		}
	}
	if lm, err := infer.LoadLMFile(filepath.Join(dir, "out", "tinyllm-w8a8.qm")); err != nil || lm.ContextLength() != 16 {
		t.Fatalf("exported W8A8 model: %v", err)
	}
	// quantized checkpoints are self-describing: the model, its QConfig and every site's state
	// restore from the file alone
	qc, err := graph.LoadCheckpoint(filepath.Join(dir, "out", "qat_w4a8_hadamard.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	qn, err := graph.FromCheckpoint(qc)
	if err != nil {
		t.Fatal(err)
	}
	qcfg, err := qat.CheckpointQConfig(qc)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := qat.Prepare(qn, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := qp.LoadState(qc); err != nil {
		t.Fatal(err)
	}
	if qc.Meta["hadamard_seed"] == "" || len(qc.Float32s("quant/blk0.mlp.w2.weight.log_scale")) != 16*32/8 {
		t.Fatalf("quantized checkpoint: meta %v", qc.Meta)
	}
	// rotations folded into the weights: plain weights, gains 1, the online Hadamard in the architecture
	for _, run := range []string{"ptq_w4a4_quarot", "qat_w4a4_spin"} {
		rc, err := graph.LoadCheckpoint(filepath.Join(dir, "out", run+".ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		rn, err := graph.FromCheckpoint(rc)
		if err != nil {
			t.Fatal(err)
		}
		lm := rn.(*graph.LM)
		if g := lm.Param("blk1.mlp_norm.gain").Value.Data().([]float32); !lm.Config.OnlineHadamard || g[0] != 1 || g[5] != 1 {
			t.Fatalf("%s: OnlineHadamard %v, gain %v", run, lm.Config.OnlineHadamard, g[:6])
		}
	}
	// the saved float model beats the untrained one on this very regular text
	c, err := graph.LoadCheckpoint(o.ckpt)
	if err != nil {
		t.Fatal(err)
	}
	cfg := graph.LMConfig{Vocab: 256, Dim: 16, Layers: 2, Heads: 2, Hidden: 32, Ctx: 16}
	fresh, _ := graph.NewLM("tinyllm", cfg, tensor.Float32, 1)
	trained, _ := graph.NewLM("tinyllm", cfg, tensor.Float32, 1)
	if err := trained.LoadState(c); err != nil {
		t.Fatal(err)
	}
	var tk text.ByteTokenizer
	xs, ys := text.Windows(tk.Encode([]byte(b.String())), 4, 16, 2)
	loss := func(m *graph.LM) float64 {
		e, err := qat.NewTrainer(&qat.NextTokenTask{LM: m}, nil, qat.Config{BatchSize: 4, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		l, err := e.Evaluate(qat.Tokens{IDs: xs, Targets: ys})
		if err != nil {
			t.Fatal(err)
		}
		return l.Loss
	}
	if l0, l1 := loss(fresh), loss(trained); !(l1 < l0-1) {
		t.Fatalf("training did not lower the loss enough: %v -> %v", l0, l1)
	}
}

// TestQATBeatsPTQAt4Bits trains a small model on 96 KiB of Go source, then checks on the
// validation text that QAT W4A4 beats PTQ W4A4 and that rotating (Hadamard) helps PTQ W4A4.
func TestQATBeatsPTQAt4Bits(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model (a few seconds)")
	}
	o, err := parseFlags([]string{"-max-bytes", "98304", "-dim", "32", "-heads", "2", "-hidden", "64", "-ctx", "32", "-batch", "8",
		"-steps", "300", "-qat-steps", "60", "-eval-batches", "8", "-calib", "4", "-gen", "0", "-ckpt", "", "-out", "",
		"-runs", "ptq:w4a4,ptq:w4a4:hadamard,qat:w4a4"})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	stdout := os.Stdout
	os.Stdout, _ = os.Open(os.DevNull)
	rows, err := run(o, log)
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	loss := map[string]float64{}
	for _, r := range rows {
		loss[r.method+" "+r.bits] = r.loss
		t.Logf("%-40s %-9s %.4f", r.method, r.bits, r.loss)
	}
	ptq, ptqH, qat := loss["PTQ W4A4 g32"], loss["PTQ + Hadamard W4A4 g32"], loss["QAT (LSQ w, LSQ+ a) W4A4 g32"]
	if ptq == 0 || ptqH == 0 || qat == 0 {
		t.Fatalf("missing rows: %v", loss)
	}
	if !(qat < ptq) || !(ptqH < ptq) {
		t.Fatalf("PTQ W4A4 %.4f, PTQ W4A4 + Hadamard %.4f, QAT W4A4 %.4f", ptq, ptqH, qat)
	}
}

// TestFlagValidation (issue 14, item 4): bad values are errors before any work.
// -quick shrinks only the sizes that were not given: explicit -runs, -gen and -steps stay.
func TestQuickKeepsExplicitFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-runs", "ptq:w4a8:gptq", "-gen", "0", "-steps", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if o.runs != "ptq:w4a8:gptq" || o.gen != 0 || o.steps != 7 || o.qatSteps != 50 || o.maxBytes != 1<<20 {
		t.Errorf("runs %q gen %d steps %d qat-steps %d max-bytes %d", o.runs, o.gen, o.steps, o.qatSteps, o.maxBytes)
	}
}

func TestFlagValidation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for valid
	}{
		{nil, ""},
		{[]string{"-quick"}, ""},
		{[]string{"-steps", "0"}, "-steps must be >= 1, got 0"},
		{[]string{"-qat-steps", "-3"}, "-qat-steps must be >= 1, got -3"},
		{[]string{"-lr", "-1"}, "-lr must be a finite number > 0, got -1"},
		{[]string{"-lr", "0"}, "-lr must be a finite number > 0, got 0"},
		{[]string{"-qat-lr", "NaN"}, "-qat-lr must be a finite number > 0, got NaN"},
		{[]string{"-wd", "-0.1"}, "-wd must be a finite number >= 0"},
		{[]string{"-batch", "0"}, "-batch must be >= 1, got 0"},
		{[]string{"-ctx", "1"}, "-ctx must be >= 2, got 1"},
		{[]string{"-dim", "0"}, "-dim must be >= 1"},
		{[]string{"-dim", "64", "-heads", "5"}, "-heads 5 does not divide -dim 64"},
		{[]string{"-layers", "-1"}, "-layers must be >= 1"},
		{[]string{"-hidden", "0"}, "-hidden must be >= 1"},
		{[]string{"-max-bytes", "0"}, "-max-bytes must be >= 1"},
		{[]string{"-eval-batches", "0"}, "-eval-batches must be >= 1"},
		{[]string{"-calib", "0"}, "-calib must be >= 1"},
		{[]string{"-group", "-8"}, "-group must be >= 0"},
		{[]string{"-head-bits", "9"}, "-head-bits must be in [2,8], got 9"},
		{[]string{"-alpha", "1.5"}, "-alpha must be in [0,1], got 1.5"},
		{[]string{"-spin-lr", "0"}, "-spin-lr must be a finite number > 0"},
		{[]string{"-gen", "-1"}, "-gen must be >= 0"},
		{[]string{"-temp", "-1"}, "-temp must be a finite number >= 0"},
		{[]string{"-runs", "ptq:w9"}, `run "ptq:w9"`},
		{[]string{"steps"}, `unexpected arguments ["steps"]`},
	} {
		_, err := parseFlags(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}
