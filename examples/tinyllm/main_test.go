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
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestParseRuns(t *testing.T) {
	es, err := parseRuns("ptq:w8a8, qat:w4a8:smooth:hadamard", options{group: 32, headBits: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].qat || es[0].spec.learnW || !es[1].qat || !es[1].spec.learnW || !es[1].smooth || !es[1].rotate ||
		es[1].spec.wbits != 4 || es[1].spec.abits != 8 {
		t.Fatalf("parsed %+v", es)
	}
	for _, bad := range []string{"ptq", "foo:w8a8", "ptq:8", "qat:w4a8:rotate"} {
		if _, err := parseRuns(bad, options{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLRSchedule(t *testing.T) {
	lr := lrAt(1, 0, 10, 2)
	if lr != 0.5 {
		t.Fatalf("warm-up lr %v", lr)
	}
	if l := lrAt(1, 10, 10, 2); math.Abs(l-0.1) > 1e-12 {
		t.Fatalf("final lr %v, want 0.1", l)
	}
}

// TestAdamWFirstStep: after one step, bias-corrected Adam moves each weight by lr*sign(g), after
// the decoupled decay w -= lr*wd*w; clipping scales g but not the sign.
func TestAdamWFirstStep(t *testing.T) {
	g := G.NewGraph()
	gv := tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{3, -4, 0.5}))
	gn := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("g"), G.WithValue(gv))
	p := &trainable{value: []float32{1, 1, -2}, grad: gn, decay: true}
	a := adamW{beta1: 0.9, beta2: 0.95, eps: 1e-8, wd: 0.1, clip: 1}
	norm, err := a.step([]*trainable{p}, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(norm-math.Sqrt(9+16+0.25)) > 1e-6 {
		t.Fatalf("grad norm %v", norm)
	}
	want := []float64{1 - 0.001 - 0.01, 1 - 0.001 + 0.01, -2 + 0.002 - 0.01}
	for i, w := range p.value {
		if math.Abs(float64(w)-want[i]) > 1e-6 {
			t.Fatalf("w[%d] = %v, want %v", i, w, want[i])
		}
	}
	gv.Data().([]float32)[0] = float32(math.NaN())
	if _, err := a.step([]*trainable{p}, 0.01); err == nil {
		t.Fatal("NaN gradient: no error")
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
		"-ckpt", filepath.Join(dir, "f.ckpt"), "-out", filepath.Join(dir, "out"), "-runs", "ptq:w8a8,ptq:w4a4:smooth:hadamard,qat:w4a8:hadamard"})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	stdout := os.Stdout
	os.Stdout, _ = os.Open(os.DevNull)
	_, err = run(o, log)
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	// quantized checkpoints carry the weights and every site's scales
	qc, err := graph.LoadCheckpoint(filepath.Join(dir, "out", "qat_w4a8_hadamard.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if qc.Meta["hadamard_seed"] == "" || len(qc.Float32s("quant/head.weight.scale")) != 256 ||
		len(qc.Float32s("quant/blk0.mlp.w2.weight.scale")) != 16*32/8 || len(qc.Float32s("quant/blk1.attn.in.zero_point")) != 1 {
		t.Fatalf("quantized checkpoint: meta %v", qc.Meta)
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
		e, err := newEvaluator(m, nil, nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer e.close()
		l, err := e.loss(xs, ys)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l0, l1 := loss(fresh), loss(trained); !(l1 < l0-1) {
		t.Fatalf("training did not lower the loss enough: %v -> %v", l0, l1)
	}
}

// TestLearnedRotationsKeepFunction: rotations updated by Cayley SGD under 4-bit fake quantization
// stay orthogonal, move away from their Hadamard start, and leave the float model's function
// unchanged. (In float the loss does not depend on them: its Riemannian gradient is zero.)
func TestLearnedRotationsKeepFunction(t *testing.T) {
	cfg := graph.LMConfig{Vocab: 256, Dim: 16, Layers: 1, Heads: 2, Hidden: 32, Ctx: 8}
	lm, err := graph.NewLM("tinyllm", cfg, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]int, 500)
	for i := range toks {
		toks[i] = (i * 31) % 97
	}
	s, _ := text.NewSampler(toks, 2, 8, 1)
	log := logrus.New()
	log.SetOutput(io.Discard)
	rots := newLearnedRotations(nil)
	q := newQuant(qspec{wbits: 4, abits: 4, group: 8, headBits: 8, actMomentum: 0.05}, false)
	tr, err := newTrainRun("spin", lm, q, nil, rots, 2, s, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	start := rots.matrices()
	for i := 0; i < 5; i++ {
		x, y := s.Next(int64(i))
		if _, err := tr.forward(x, y); err != nil {
			t.Fatal(err)
		}
		if err := rots.step(0.5); err != nil {
			t.Fatal(err)
		}
	}
	if e := rots.maxOrthogonalityError(); e > 1e-5 {
		t.Fatalf("orthogonality error %g", e)
	}
	moved := 0.0
	for seed, m := range rots.matrices() {
		for i := range m {
			moved = max(moved, math.Abs(m[i]-start[seed][i]))
		}
	}
	if math.Abs(moved-rots.maxDrift()) > 1e-12 {
		t.Fatalf("maxDrift %v, measured %v", rots.maxDrift(), moved)
	}
	if moved < 1e-4 {
		t.Fatalf("rotations did not move (max change %g)", moved)
	}
	x, y := s.Next(99)
	loss := func(rot graph.RotateFunc) float64 {
		e, err := newEvaluator(lm, nil, rot, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer e.close()
		l, err := e.run(x, y)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if a, b := loss(nil), loss(fixedRotations(rots.matrices())); math.Abs(a-b) > 1e-4 {
		t.Fatalf("loss %v without rotations, %v with the learned ones", a, b)
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
