package export

import (
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

// lmText is the training text of the LM export tests: bytes of Go-like source.
const lmText = `func (b *Buffer) Write(p []byte) (n int, err error) {
	b.lastRead = opInvalid
	m, ok := b.tryGrowByReslice(len(p))
	if !ok {
		m = b.grow(len(p))
	}
	return copy(b.buf[m:], p), nil
}
`

// textBatches returns batch sequences of ctx bytes of lmText (and next bytes) starting at offsets
// that depend on step.
func textBatches(batch, ctx int) qat.TokenBatches {
	return func(step int64) ([]int, []int) {
		ids, tg := make([]int, batch*ctx), make([]int, batch*ctx)
		for b := 0; b < batch; b++ {
			o := int(step*37+int64(b)*101) % len(lmText)
			for j := 0; j < ctx; j++ {
				ids[b*ctx+j] = int(lmText[(o+j)%len(lmText)])
				tg[b*ctx+j] = int(lmText[(o+j+1)%len(lmText)])
			}
		}
		return ids, tg
	}
}

func batchesOf(data qat.TokenBatches, from, n int64) (xs, ys [][]int) {
	for i := from; i < from+n; i++ {
		x, y := data(i)
		xs, ys = append(xs, x), append(ys, y)
	}
	return xs, ys
}

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

const lmBatch = 4

// trainedLM trains a small byte LM (2 blocks, d=32, 2 heads, hidden 64, ctx 16; with hadamard an
// online Walsh-Hadamard before each w2) in float for a few steps and returns a checkpoint of it.
func trainedLM(t *testing.T, hadamard bool) *graph.Checkpoint {
	t.Helper()
	lm, err := graph.NewLM("tiny", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 2, Heads: 2, Hidden: 64, Ctx: 16, OnlineHadamard: hadamard}, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := qat.Config{BatchSize: lmBatch, LR: 1e-2, MinLR: 1e-3, Schedule: qat.WarmupCosineLR, Warmup: 5, Beta2: 0.95, ClipNorm: 1, Logger: quietLog()}
	cfg.Steps = 60
	tr, err := qat.NewTrainer(&qat.NextTokenTask{LM: lm, Train: textBatches(lmBatch, 16)}, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Fit(nil); err != nil {
		t.Fatal(err)
	}
	var ck graph.Checkpoint
	lm.SaveState(&ck)
	return &ck
}

// preparedLM quantizes the checkpoint's LM with recipe r: PTQ (calibration) and, with qatSteps,
// that many QAT steps.
func preparedLM(t *testing.T, ck *graph.Checkpoint, r qat.LMRecipe, qatSteps int) (*qat.Prepared, *qat.Trainer) {
	t.Helper()
	n, err := graph.FromCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	lm := n.(*graph.LM)
	p, err := qat.Prepare(lm, r.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := qat.Config{BatchSize: lmBatch, LR: 1e-3, Beta2: 0.95, ClipNorm: 1, Logger: quietLog(), Steps: int64(qatSteps), QuantInit: qat.InitMinMax}
	data := textBatches(lmBatch, 16)
	cx, cy := batchesOf(data, 500, 4)
	tr, err := qat.NewTrainer(&qat.NextTokenTask{LM: lm, Train: data, First: 60, CalibIDs: cx, CalibTargets: cy}, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if qatSteps > 0 {
		if err := tr.Fit(nil); err != nil {
			t.Fatal(err)
		}
	} else if err := tr.Calibrate(len(cx)); err != nil {
		t.Fatal(err)
	}
	return p, tr
}

// TestExportLMParity exports a trained LM at W8A8 (PTQ) and W4A8 with groups of 16 (QAT, LSQ
// weights) and checks the integer runtime against the export graph, which takes every runtime
// op's value from the runtime's arithmetic: every int8 activation, the logits, the loss and the
// greedy continuations must be identical (end to end, through the graph's quantizers, head
// layouts and batching). Two independent references: the dequantized weights of the file equal
// the fake-quantized weights of the graph (bit for bit per channel, within the group scale
// snapping for groups), and lmref's float32 forward of the file predicts like the runtime.
func TestExportLMParity(t *testing.T) {
	ck, ckH := trainedLM(t, false), trainedLM(t, true)
	data := textBatches(lmBatch, 16)
	vx, vy := batchesOf(data, 900, 3)
	cx, _ := batchesOf(data, 500, 4)
	for _, tc := range []struct {
		name     string
		hadamard bool
		r        qat.LMRecipe
		qatSteps int
		maxLoss  float64 // relative loss difference runtime vs the export graph's float ops
	}{
		{"W8A8-PTQ", false, qat.LMRecipe{WBits: 8, ABits: 8}, 0, 0.01},
		{"W4A8g16-QAT", false, qat.LMRecipe{WBits: 4, ABits: 8, Group: 16, HeadBits: 8, LearnW: true, ActMomentum: 0.05}, 5, 0.02},
		{"W4A8g16-Hadamard-PTQ", true, qat.LMRecipe{WBits: 4, ABits: 8, Group: 16, HeadBits: 8}, 0, 0.02},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ck
			if tc.hadamard {
				c = ckH
			}
			p, tr := preparedLM(t, c, tc.r, tc.qatSteps)
			defer tr.Close()
			mFQ, err := tr.Evaluate(qat.Tokens{IDs: vx, Targets: vy})
			lossFQ := mFQ.Loss
			if err != nil {
				t.Fatal(err)
			}
			opt := Options{Batch: lmBatch, Calib: cx, Meta: map[string]string{"test": tc.name}}
			if _, err := Lower(p, Options{Batch: lmBatch, Meta: opt.Meta}); err == nil {
				t.Fatal("Lower without calibration batches succeeded")
			}
			qm, err := Lower(p, opt)
			if err != nil {
				t.Fatal(err)
			}
			if qm.Meta["qconfig"] != p.Config.Name || qm.Meta["test"] != tc.name || !qm.IsLM() {
				t.Fatalf("meta %v", qm.Meta)
			}
			e, err := NewLMEval(p, qm, lmBatch)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			rep, err := e.Parity(vx, vy)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Arith != ArithSpec.String() {
				t.Fatalf("graph arithmetic %q, want the integer specification's", rep.Arith)
			}
			snap := rep.GroupScaleErr
			if (tc.r.Group > 0) != (snap > 0) || snap > 1e-3 {
				t.Fatalf("group scale snapping error %v", snap)
			}
			var sb strings.Builder
			rep.Write(&sb)
			t.Logf("%s: trained fake-quant loss %.4f\n%s", tc.name, lossFQ, sb.String())
			perBlock := 15
			if tc.hadamard {
				perBlock++
			}
			if len(rep.Layers) != 1+2*perBlock+1 {
				t.Fatalf("%d layers compared", len(rep.Layers))
			}
			differs := 0.0
			for _, l := range rep.Layers {
				if l.MaxLSB != 0 || l.Equal != 1 {
					t.Errorf("layer %+v differs from the runtime", l)
				}
				// Each float op alone rounds like the integer op up to 1 LSB near rounding
				// boundaries (the runtime ops' float-math bounds, infer's TestLMOpsAgainstFloat);
				// attention rounds the KV cache before its softmax, so a cache level 1 LSB off
				// moves its output by a few LSB at most (3 seen on the -quick tinyllm).
				if l.AloneMaxLSB > 4 || l.AloneWithin1 < 0.99 {
					t.Errorf("layer %s alone in float arithmetic: %+v", l.Name, l)
				}
				differs += 1 - l.AloneEqual
			}
			if differs == 0 || rep.AgreementFloatArith == 1 && rep.LossFloatArith == rep.LossGraph {
				t.Errorf("the graph's float ops give the runtime's levels everywhere: float arithmetic not switched on?")
			}
			if rel := math.Abs(rep.LossRuntime-rep.LossFloatArith) / rep.LossFloatArith; rel > tc.maxLoss || rep.AgreementFloatArith < 0.9 {
				t.Errorf("float-arithmetic graph: loss %v, runtime %v (relative %v), agreement %v", rep.LossFloatArith, rep.LossRuntime, rel, rep.AgreementFloatArith)
			}
			if rep.Layers[0].Name != "tok_emb" {
				t.Errorf("first layer %+v", rep.Layers[0])
			}
			// The graph computes its cross-entropy in float32, the report the runtime's in float64.
			if rel := math.Abs(rep.LossRuntime-rep.LossGraph) / rep.LossGraph; rel > 1e-5 || rep.Agreement != 1 || rep.MaxLogitDiff != 0 {
				t.Errorf("loss graph %v runtime %v (relative %v), agreement %v, logit difference %v", rep.LossGraph, rep.LossRuntime, rel, rep.Agreement, rep.MaxLogitDiff)
			}
			var prompts [][]int
			for i := 0; i < 8; i++ {
				prompts = append(prompts, vx[i/4][(i%4)*16:(i%4)*16+8])
			}
			rt, err := infer.LoadLM(qm)
			if err != nil {
				t.Fatal(err)
			}
			gr, err := GreedyRuntime(rt, prompts, 8)
			if err != nil {
				t.Fatal(err)
			}
			gg, err := GreedyGraph(e.Logits, lmBatch, 16, 256, prompts, 8)
			if err != nil {
				t.Fatal(err)
			}
			if same := SameShare(gr, gg); same != 1 {
				t.Errorf("greedy continuations identical for %v of the prompts", same)
			}
			// The two integer implementations give the graph the same logits (the specification's
			// by default, the runtime's own ops as the diagnostic), the float ops others.
			spec, err := e.Logits(vx[0])
			if err != nil {
				t.Fatal(err)
			}
			e.SetArith(ArithRuntime)
			byRuntime, err := e.Logits(vx[0])
			if err != nil {
				t.Fatal(err)
			}
			e.SetArith(ArithFloat)
			byFloat, err := e.Logits(vx[0])
			if err != nil {
				t.Fatal(err)
			}
			e.SetArith(ArithSpec)
			if !slices.Equal(spec, byRuntime) || slices.Equal(spec, byFloat) {
				t.Errorf("logits: spec and runtime arithmetic equal %v, spec and float ops equal %v", slices.Equal(spec, byRuntime), slices.Equal(spec, byFloat))
			}
			checkWeights(t, e, qm, snap)
			checkFloatReference(t, qm, vx, vy, rep.LossRuntime)
		})
	}
}

// TestExportLMKV4Parity: an LM trained with 4-bit KV-cache fake quantization (QAT, learned
// per-head scales) exports with the learned cache scales and a cache range of 7, and the integer
// runtime matches the fake-quant graph (losses in bits per byte, greedy next tokens). The same
// file without the cache range (an int8 cache at the same scales: keys and values beyond 7 levels
// kept) is logged for comparison.
func TestExportLMKV4Parity(t *testing.T) {
	ck := trainedLM(t, false)
	data := textBatches(lmBatch, 16)
	vx, vy := batchesOf(data, 900, 3)
	cx, _ := batchesOf(data, 500, 4)
	p, tr := preparedLM(t, ck, qat.LMRecipe{WBits: 8, ABits: 8, KVBits: 4, LearnW: true, LearnA: true}, 10)
	defer tr.Close()
	mFQ, err := tr.Evaluate(qat.Tokens{IDs: vx, Targets: vy})
	if err != nil {
		t.Fatal(err)
	}
	lossFQ := mFQ.Loss
	qm, err := Lower(p, Options{Batch: lmBatch, Calib: cx})
	if err != nil {
		t.Fatal(err)
	}
	var attn int
	for i := range qm.Ops {
		op := &qm.Ops[i]
		if op.Kind != qmodel.OpAttention {
			continue
		}
		attn++
		km, vm, err := qm.AttentionCacheMax(op)
		if err != nil || km != 7 || vm != 7 {
			t.Fatalf("%s: cache range %d, %d (%v), want 7, 7", op.Name, km, vm, err)
		}
		for j, suf := range []string{".k_cache", ".v_cache"} {
			sp, err := p.Params(op.Name + suf)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := qm.Tensors[op.Inputs[3+j]].Float32Values()
			for h, s := range got {
				if s != sp.Params[h].Scale {
					t.Fatalf("%s%s head %d: file scale %v, learned %v", op.Name, suf, h, s, sp.Params[h].Scale)
				}
			}
		}
	}
	if attn != 2 {
		t.Fatalf("%d attention ops", attn)
	}
	e, err := NewLMEval(p, qm, lmBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rep, err := e.Parity(vx, vy)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	rep.Write(&sb)
	t.Logf("W8A8 KV4 QAT: trained fake-quant loss %.4f\n%s", lossFQ, sb.String())
	for _, l := range rep.Layers {
		if l.MaxLSB != 0 {
			t.Errorf("layer %+v differs from the runtime", l)
		}
	}
	if rel := math.Abs(rep.LossRuntime-rep.LossFloatArith) / rep.LossFloatArith; rel > 0.02 || rep.AgreementFloatArith < 0.95 {
		t.Errorf("float-arithmetic graph: loss %v, runtime %v (relative %v), agreement %v", rep.LossFloatArith, rep.LossRuntime, rel, rep.AgreementFloatArith)
	}

	// The same file without the cache range: the runtime keeps keys and values beyond 7 levels
	// that the graph's 4-bit KV quantizer clamps, so its attention ops alone differ more.
	wide := *qm
	wide.Ops = append([]qmodel.Op(nil), qm.Ops...)
	for i := range wide.Ops {
		if op := &wide.Ops[i]; op.Kind == qmodel.OpAttention {
			op.Inputs = op.Inputs[:5]
		}
	}
	we, err := NewLMEval(p, &wide, lmBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer we.Close()
	wrep, err := we.Parity(vx, vy)
	if err != nil {
		t.Fatal(err)
	}
	var worse bool
	for i, l := range rep.Layers {
		w := wrep.Layers[i]
		if strings.HasSuffix(l.Name, ".attn") {
			t.Logf("%s alone in float arithmetic: cache range 7: max %d LSB, %.4f within 1; no range: max %d, %.4f", l.Name, l.AloneMaxLSB, l.AloneWithin1, w.AloneMaxLSB, w.AloneWithin1)
			if l.AloneWithin1 < 0.99 || l.AloneMaxLSB > 4 {
				t.Errorf("%s alone: %+v", l.Name, l)
			}
			worse = worse || w.AloneWithin1 < l.AloneWithin1
		}
	}
	t.Logf("float-arithmetic graph vs runtime: with the cache range loss %.4f / %.4f (agreement %.4f), without %.4f / %.4f (agreement %.4f)",
		rep.LossFloatArith, rep.LossRuntime, rep.AgreementFloatArith, wrep.LossFloatArith, wrep.LossRuntime, wrep.AgreementFloatArith)
	if !worse {
		t.Error("dropping the cache range did not change the attention ops: the 4-bit clamp is not exercised")
	}
}

// checkWeights compares the file's dequantized weights with the graph's fake-quantized weights.
func checkWeights(t *testing.T, e *LMEval, qm *qmodel.Model, snap float64) {
	t.Helper()
	for i := range qm.Ops {
		op := &qm.Ops[i]
		if op.Kind != qmodel.OpLinear && op.Kind != qmodel.OpLMHead {
			continue
		}
		node := e.g.net.Sites[op.Name+".weight"]
		if node == nil {
			t.Fatalf("no weight site for %s", op.Name)
		}
		want := floats(node.Value())
		got, err := lmref.Dequantized(qm, op)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if d := math.Abs(float64(got[j]) - want[j]); d > snap*math.Abs(want[j])+1e-6*math.Abs(want[j]) {
				t.Fatalf("%s weight %d: file %v, graph %v", op.Name, j, got[j], want[j])
			}
		}
	}
}

// checkFloatReference runs lmref's float32 forward of the file (float activations) and checks that
// its loss is close to the integer runtime's.
func checkFloatReference(t *testing.T, qm *qmodel.Model, xs, ys [][]int, lossRT float64) {
	t.Helper()
	f, err := lmref.NewFloat(qm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := qm.ContextLength()
	var sum float64
	var n int
	for i := range xs {
		for o := 0; o < len(xs[i]); o += ctx {
			f.Reset()
			for j := 0; j < ctx; j++ {
				l, err := f.Step(xs[i][o+j])
				if err != nil {
					t.Fatal(err)
				}
				sum += crossEntropy(l, ys[i][o+j])
				n++
			}
		}
	}
	ref := sum / float64(n)
	t.Logf("float32 reference of the file: loss %.4f, runtime %.4f", ref, lossRT)
	if math.Abs(ref-lossRT)/ref > 0.05 {
		t.Errorf("float reference loss %v, integer runtime %v", ref, lossRT)
	}
}

// TestExportLMBadInput: a nil model, CNN-only options, LM options on a CNN, an uncalibrated LM,
// missing calibration batches and 4-bit activations are clear errors.
func TestExportLMBadInput(t *testing.T) {
	if _, err := Lower(nil, Options{}); err == nil {
		t.Error("nil prepared model accepted")
	}
	if _, err := NewLMEval(nil, nil, 1); err == nil {
		t.Error("NewLMEval without a model accepted")
	}
	m, err := qat.NewModel("bn-cnn", 1)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := qat.Prepare(m, qat.W8A8())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lower(pc, Options{Calib: [][]int{{1}}}); err == nil || !strings.Contains(err.Error(), "language models") {
		t.Errorf("CNN with calibration tokens: %v", err)
	}
	ck := trainedLM(t, false)
	data := textBatches(lmBatch, 16)
	cx, _ := batchesOf(data, 500, 2)

	n, _ := graph.FromCheckpoint(ck)
	raw, err := qat.Prepare(n, qat.LMRecipe{WBits: 8, ABits: 8}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lower(raw, Options{Batch: lmBatch, Calib: cx}); err == nil || !strings.Contains(err.Error(), "calibrated") {
		t.Errorf("uncalibrated activation sites: %v", err)
	}
	if _, err := NewLMEval(raw, &qmodel.Model{}, lmBatch); err == nil {
		t.Error("NewLMEval with a model that is not an LM accepted")
	}

	p, tr := preparedLM(t, ck, qat.LMRecipe{WBits: 4, ABits: 4, Group: 16}, 0)
	defer tr.Close()
	if _, err := Lower(p, Options{Batch: lmBatch, Calib: cx[:1], Softmax: true}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Softmax on an LM: %v", err)
	}
	if _, err := Lower(p, Options{Batch: lmBatch}); err == nil || !strings.Contains(err.Error(), "Calib") {
		t.Errorf("no calibration batches: %v", err)
	}
	if _, err := Lower(p, Options{Batch: lmBatch, Calib: cx[:1]}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("4-bit activations: %v", err)
	}
}

// TestGreedyGraph: a forward whose logits favour (token+1) mod 5 at every position continues
// each prompt by counting; the last batch is partial; prompts that do not fit are errors.
func TestGreedyGraph(t *testing.T) {
	const batch, ctx, vocab = 2, 6, 5
	f := func(ids []int) ([]float64, error) {
		l := make([]float64, len(ids)*vocab)
		for i, id := range ids {
			l[i*vocab+(id+1)%vocab] = 1
		}
		return l, nil
	}
	got, err := GreedyGraph(f, batch, ctx, vocab, [][]int{{0}, {3, 4}, {2}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{1, 2, 3}, {0, 1, 2}, {3, 4, 0}}
	if SameShare(got, want) != 1 {
		t.Fatalf("got %v, want %v", got, want)
	}
	if SameShare(got, [][]int{{1, 2, 3}, {0, 1, 2}, {3, 4, 1}}) != 2.0/3 {
		t.Error("SameShare")
	}
	if _, err := GreedyGraph(f, batch, ctx, vocab, [][]int{{1, 2, 3, 4}}, 3); err == nil {
		t.Error("prompt + continuation longer than the context accepted")
	}
	if _, err := GreedyGraph(f, batch, ctx, vocab, [][]int{{}}, 3); err == nil {
		t.Error("empty prompt accepted")
	}
}

// TestRestoreLMRefusesOnlineRotations: a checkpoint that records online rotations of every
// linear input is refused; the same checkpoint without them restores.
func TestRestoreLMRefusesOnlineRotations(t *testing.T) {
	lm, err := graph.NewLM("r", graph.LMConfig{Vocab: 16, Dim: 8, Layers: 1, Heads: 2, Ctx: 4}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := qat.Prepare(lm, qat.LMRecipe{WBits: 8, ABits: 8}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	ck := &graph.Checkpoint{Meta: map[string]string{}}
	lm.SaveState(ck)
	p.SaveState(ck)
	if _, err := RestoreLM(ck, nil); err != nil {
		t.Fatal(err)
	}
	ck.Meta["hadamard_seed"] = "7"
	if _, err := RestoreLM(ck, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("online rotations: %v", err)
	}
}
