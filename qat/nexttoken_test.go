package qat

import (
	"io"
	"math"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// periodicTokens is a learnable stream: token i is (7i mod 11).
func periodicBatches(batch, ctx int) TokenBatches {
	return func(step int64) ([]int, []int) {
		ids, tg := make([]int, batch*ctx), make([]int, batch*ctx)
		for b := 0; b < batch; b++ {
			for j := 0; j < ctx; j++ {
				p := int(step)*3 + b*5 + j
				ids[b*ctx+j], tg[b*ctx+j] = (7*p)%11, (7*(p+1))%11
			}
		}
		return ids, tg
	}
}

func smallLM(t *testing.T) *graph.LM {
	lm, err := graph.NewLM("lm", graph.LMConfig{Vocab: 11, Dim: 16, Layers: 1, Heads: 2, Hidden: 32, Ctx: 8}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

func lmBatches(data TokenBatches, from, n int64) (xs, ys [][]int) {
	for i := from; i < from+n; i++ {
		x, y := data(i)
		xs, ys = append(xs, x), append(ys, y)
	}
	return xs, ys
}

// TestNextTokenFloatAndQAT: the Trainer on a NextTokenTask: float training with AdamW, clipping and warm-up + cosine lowers the
// loss of a periodic sequence far below ln(11); QAT W4A8 from there keeps it low; PTQ W4A4 after
// calibration is worse than QAT; the trainer's checkpoint restores the same evaluation.
func TestNextTokenFloatAndQAT(t *testing.T) {
	data := periodicBatches(4, 8)
	vx, vy := lmBatches(data, 1000, 2)
	lm := smallLM(t)
	cfg := Config{BatchSize: 4, LR: 1e-2, MinLR: 1e-3, Schedule: WarmupCosineLR, Warmup: 10, Beta2: 0.95,
		ClipNorm: 1, WeightDecay: 0.05, Logger: quietLogger()}
	val := Tokens{IDs: vx, Targets: vy}
	fc := cfg
	fc.Steps = 150
	ft, err := NewTrainer(&NextTokenTask{LM: lm, Train: data}, nil, fc)
	if err != nil {
		t.Fatal(err)
	}
	m0, err := ft.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	if err := ft.Fit(nil); err != nil {
		t.Fatal(err)
	}
	m1, _ := ft.Evaluate(val)
	l0, l1 := m0.Loss, m1.Loss
	ft.Close()
	if !(l0 > 2 && l1 < 0.5) {
		t.Fatalf("float loss %v -> %v", l0, l1)
	}
	var base graph.Checkpoint
	lm.SaveState(&base)

	clone := func() *graph.LM {
		n, err := graph.FromCheckpoint(&base)
		if err != nil {
			t.Fatal(err)
		}
		return n.(*graph.LM)
	}
	// QAT W4A8, LSQ weights
	qlm := clone()
	p, err := Prepare(qlm, LMRecipe{WBits: 4, ABits: 8, Group: 8, HeadBits: 8, LearnW: true, ActMomentum: 0.05}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg.LR, cfg.MinLR, cfg.Warmup, cfg.Steps, cfg.QuantInit = 2e-3, 2e-4, 3, 30, InitMinMax
	x0, y0 := data(500)
	qt, err := NewTrainer(&NextTokenTask{LM: qlm, Train: data, First: 150, CalibIDs: [][]int{x0}, CalibTargets: [][]int{y0}}, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer qt.Close()
	if err := qt.InitQuantizers(); err != nil {
		t.Fatal(err)
	}
	if len(p.Learnables()) == 0 {
		t.Fatal("no learnable quantizer state")
	}
	if err := qt.Fit(nil); err != nil {
		t.Fatal(err)
	}
	mq, err := qt.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	lq := mq.Loss
	if !(lq < 0.7) {
		t.Fatalf("QAT W4A8 loss %v (float %v)", lq, l1)
	}
	path := filepath.Join(t.TempDir(), "qat.ckpt")
	if err := qt.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := graph.FromCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	qc, err := CheckpointQConfig(ck)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Prepare(n, qc)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.LoadState(ck); err != nil {
		t.Fatal(err)
	}
	rt, err := NewTrainer(&NextTokenTask{LM: n.(*graph.LM)}, p2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if mr, err := rt.Evaluate(val); err != nil || math.Abs(mr.Loss-lq) > 1e-6 {
		t.Fatalf("restored QAT model: loss %v (%v), live %v", mr.Loss, err, lq)
	}

	// PTQ W4A4 from the float model: calibrate, evaluate; worse than float.
	plm := clone()
	pp, err := Prepare(plm, LMRecipe{WBits: 4, ABits: 4, Group: 8, HeadBits: 8}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	cx, cy := lmBatches(data, 2000, 3)
	pt, err := NewTrainer(&NextTokenTask{LM: plm, CalibIDs: cx, CalibTargets: cy}, pp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	if err := pt.Calibrate(len(cx)); err != nil {
		t.Fatal(err)
	}
	mp, err := pt.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	lp := mp.Loss
	t.Logf("float %.4f -> %.4f, QAT W4A8 %.4f, PTQ W4A4 %.4f", l0, l1, lq, lp)
	if !(lp > l1) || math.IsNaN(lp) {
		t.Fatalf("PTQ W4A4 loss %v not above float %v", lp, l1)
	}
}

func TestLMRecipeQConfig(t *testing.T) {
	lm := smallLM(t)
	c := LMRecipe{WBits: 4, ABits: 8, Group: 8, HeadBits: 8}.QConfig()
	p, err := Prepare(lm, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		fc := p.state[s.Name].cfg
		switch {
		case s.Name == "head.weight":
			if fc.Bits != 8 || fc.GroupSize != 0 {
				t.Errorf("head weight: %+v", fc)
			}
		case s.Kind == graph.SiteWeight:
			if fc.Bits != 4 || fc.GroupSize != 8 {
				t.Errorf("%s: %+v", s.Name, fc)
			}
		default:
			if fc.Bits != 8 || fc.Granularity != 0 {
				t.Errorf("%s: %+v", s.Name, fc)
			}
		}
	}
	if _, err := Prepare(lm, c.With("nope", Override{})); err == nil {
		t.Error("override of an unknown layer: no error")
	}
}

// TestCalibrateTaskLM: CalibrateTask on a NextTokenTask observes the LM's first linear input (no
// quantizer upstream of it) with the running min/max over the calibration batches, which equals
// the min/max of that activation in the float graph over the same batches; a weight site holds
// its weight's per-channel min/max; the observers end frozen.
func TestCalibrateTaskLM(t *testing.T) {
	lm := smallLM(t)
	cx, cy := lmBatches(periodicBatches(4, 8), 100, 3)
	p, err := CalibrateTask(&NextTokenTask{LM: lm, CalibIDs: cx, CalibTargets: cy}, LMRecipe{WBits: 8, ABits: 8}.QConfig(), 3, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	site := p.Sites[0]
	for _, s := range p.Sites {
		if s.Kind == graph.SiteActivation {
			site = s
			break
		}
	}
	n, err := lm.Build(graph.LMOptions{Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range cx {
		if err := n.SetBatch(cx[i], cy[i]); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		for _, v := range n.Acts[site.Name].Value().Data().([]float32) {
			lo, hi = min(lo, float64(v)), max(hi, float64(v))
		}
	}
	st := p.state[site.Name]
	olo, ohi, ok := st.fq.Observed()
	if !ok || len(olo) != 1 || olo[0] != lo || ohi[0] != hi {
		t.Fatalf("site %s observed [%v, %v] (%v), float graph [%v, %v]", site.Name, olo, ohi, ok, lo, hi)
	}
	if !st.fq.Frozen() {
		t.Error("observers not frozen after calibration")
	}
	w := lm.Param("head.weight")
	wlo, whi, ok := p.state["head.weight"].fq.Observed()
	if !ok {
		t.Fatal("head weight not observed")
	}
	in := w.Value.Shape()[1]
	for c, d := 0, w.Value.Data().([]float32); c < len(wlo); c++ {
		mn, mx := math.Inf(1), math.Inf(-1)
		for _, v := range d[c*in : (c+1)*in] {
			mn, mx = min(mn, float64(v)), max(mx, float64(v))
		}
		if wlo[c] != mn || whi[c] != mx {
			t.Fatalf("head weight row %d observed [%v, %v], min/max [%v, %v]", c, wlo[c], whi[c], mn, mx)
		}
	}
	if _, err := CalibrateTask(&NextTokenTask{}, W8A8(), 1, 4, 0); err == nil {
		t.Error("a task without a network: no error")
	}
}
