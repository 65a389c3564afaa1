package qat

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestKVCacheSitesSTE builds an LM with 4-bit LSQ KV-cache quantization and checks, against
// formulas written here: the forward is s_h*clamp(round(x/s_h), -7, 7) with one scale per head;
// the gradient reaching the keys and values is the straight-through estimator (the output's
// gradient inside the range, zero where the quantizer clips); every head's learned scale gets a
// gradient.
func TestKVCacheSitesSTE(t *testing.T) {
	lm := smallLM(t)
	c := W8A8()
	c.KV = &Spec{Bits: 4, Method: fakequant.LSQ}
	p, err := Prepare(lm, c)
	if err != nil {
		t.Fatal(err)
	}
	var kv []graph.Site
	for _, s := range p.Sites {
		if s.Kind == graph.SiteKVCache {
			kv = append(kv, s)
		}
	}
	if len(kv) != 2 || kv[0].Name != "blk0.attn.k_cache" || kv[1].Name != "blk0.attn.v_cache" {
		t.Fatalf("KV sites %+v", kv)
	}
	nq := p.Quantizer()
	n, err := lm.Build(graph.LMOptions{Batch: 2, Quant: nq})
	if err != nil {
		t.Fatal(err)
	}
	var wrt G.Nodes
	for _, s := range kv {
		q := nq.Qs[s.Name]
		if q == nil {
			t.Fatalf("no quantizer at %s", s.Name)
		}
		if q.Out.Shape()[1] != 2 {
			t.Fatalf("%s: node shape %v, want [batch, heads, ctx*hd]", s.Name, q.Out.Shape())
		}
		// two different head scales, small enough that some keys and values clip
		if err := q.SetParams([]quant.Params{{Scale: 0.04}, {Scale: 0.07}}); err != nil {
			t.Fatal(err)
		}
		wrt = append(wrt, q.In, q.Out, q.LogScale)
	}
	// Gorgonia differentiates with regard to input nodes only: take the gradients of the
	// parameters and learned scales, and read the keys' and values' from their derivative nodes.
	params := n.ParamNodes()
	for i := 2; i < len(wrt); i += 3 {
		params = append(params, wrt[i])
	}
	if _, err := G.Grad(n.Loss, params...); err != nil {
		t.Fatal(err)
	}
	var grads G.Nodes
	for _, w := range wrt {
		if w.Deriv() == nil {
			t.Fatalf("no gradient node for %v", w)
		}
		grads = append(grads, w.Deriv())
	}
	var watch []any
	for _, g := range append(grads, wrt...) {
		watch = append(watch, g)
	}
	vm := G.NewTapeMachine(n.G, G.TraceExec(), G.WithWatchlist(watch...))
	defer vm.Close()
	ids, tg := periodicBatches(2, 8)(3)
	if err := n.SetBatch(ids, tg); err != nil {
		t.Fatal(err)
	}
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	for i, s := range kv {
		x, y := values(wrt[3*i].Value()), values(wrt[3*i+1].Value())
		gin, gout, gs := values(grads[3*i].Value()), values(grads[3*i+1].Value()), values(grads[3*i+2].Value())
		scales := values(wrt[3*i+2].Value())
		for h := range scales {
			scales[h] = math.Exp(scales[h])
		}
		per := len(x) / (2 * 2) // [batch 2, heads 2, ctx*hd]
		var inside, clipped, flowing int
		for j := range x {
			sc := scales[(j/per)%2]
			v := x[j] / sc
			if r := v - math.Floor(v); math.Abs(r-0.5) < 1e-3 { // a tie: either rounding is fine
				continue
			}
			if want := sc * math.Max(-7, math.Min(7, math.Round(v))); math.Abs(y[j]-want) > 1e-5*sc {
				t.Fatalf("%s element %d: fake-quantized %v, want %v (x %v, scale %v)", s.Name, j, y[j], want, x[j], sc)
			}
			switch {
			case math.Abs(v) < 7.4:
				inside++
				if gout[j] != 0 {
					flowing++
				}
				if math.Abs(gin[j]-gout[j]) > 1e-6*(1+math.Abs(gout[j])) {
					t.Fatalf("%s element %d inside the range: input gradient %v, output gradient %v", s.Name, j, gin[j], gout[j])
				}
			case math.Abs(v) > 7.6:
				clipped++
				if gin[j] != 0 {
					t.Fatalf("%s element %d clipped (x/s = %v): input gradient %v, want 0", s.Name, j, v, gin[j])
				}
			}
		}
		if inside == 0 || clipped == 0 || flowing == 0 {
			t.Errorf("%s: %d elements inside (%d with a gradient), %d clipped: the test needs all", s.Name, inside, flowing, clipped)
		}
		for h, g := range gs {
			if g == 0 || math.IsNaN(g) {
				t.Errorf("%s head %d: scale gradient %v", s.Name, h, g)
			}
		}
		t.Logf("%s: %d inside, %d clipped, scale gradients %v", s.Name, inside, clipped, gs)
	}
}

// kvText is the training text of the KV-cache QAT test: bytes of Go source.
const kvText = `func (b *Buffer) Write(p []byte) (n int, err error) {
	b.lastRead = opInvalid
	m, ok := b.tryGrowByReslice(len(p))
	if !ok {
		m = b.grow(len(p))
	}
	return copy(b.buf[m:], p), nil
}
`

// textBatches returns batch windows of ctx bytes of kvText (and the next bytes) at offsets that
// depend on step.
func textBatches(batch, ctx int) TokenBatches {
	return func(step int64) ([]int, []int) {
		ids, tg := make([]int, batch*ctx), make([]int, batch*ctx)
		for b := 0; b < batch; b++ {
			o := int(step*37+int64(b)*101) % len(kvText)
			for j := 0; j < ctx; j++ {
				ids[b*ctx+j] = int(kvText[(o+j)%len(kvText)])
				tg[b*ctx+j] = int(kvText[(o+j+1)%len(kvText)])
			}
		}
		return ids, tg
	}
}

// values returns a tensor's float32 or float64 values as float64.
func values(v G.Value) []float64 {
	switch d := v.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	}
	return nil
}

// TestKVCacheQATBeatsPTQ: on a small trained LM, 4-bit KV-cache quantization after training
// (calibrated observers, W8A8) costs loss; QAT with the same 4 bits (learned KV scales, LSQ
// weights and activations) ends below that PTQ loss. A checkpoint of the QAT model restores the
// KV-cache state: same parameters, same loss.
func TestKVCacheQATBeatsPTQ(t *testing.T) {
	data := textBatches(4, 16)
	vx, vy := lmBatches(data, 1000, 3)
	cx, cy := lmBatches(data, 2000, 4)
	lm, err := graph.NewLM("text", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 2, Heads: 2, Hidden: 64, Ctx: 16}, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{BatchSize: 4, LR: 1e-2, MinLR: 1e-3, Schedule: WarmupCosineLR, Warmup: 10, Beta2: 0.95,
		ClipNorm: 1, Logger: quietLogger(), Steps: 80}
	val := Tokens{IDs: vx, Targets: vy}
	eval := func(tr *Trainer) float64 {
		m, err := tr.Evaluate(val)
		if err != nil {
			t.Fatal(err)
		}
		return m.Loss
	}
	ft, err := NewTrainer(&NextTokenTask{LM: lm, Train: data}, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ft.Fit(nil); err != nil {
		t.Fatal(err)
	}
	lf := eval(ft)
	ft.Close()
	base := &graph.Checkpoint{}
	lm.SaveState(base)
	clone := func() *graph.LM {
		n, err := graph.FromCheckpoint(base)
		if err != nil {
			t.Fatal(err)
		}
		return n.(*graph.LM)
	}
	ptq := func(r LMRecipe) float64 {
		m := clone()
		p, err := Prepare(m, r.QConfig())
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(&NextTokenTask{LM: m, CalibIDs: cx, CalibTargets: cy}, p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if err := tr.Calibrate(len(cx)); err != nil {
			t.Fatal(err)
		}
		return eval(tr)
	}
	l8 := ptq(LMRecipe{WBits: 8, ABits: 8})
	lp := ptq(LMRecipe{WBits: 8, ABits: 8, KVBits: 4})

	qcfg := cfg
	qcfg.LR, qcfg.MinLR, qcfg.Warmup, qcfg.Steps, qcfg.QuantInit = 2e-3, 2e-4, 3, 40, InitMinMax
	qatRun := func(r LMRecipe) (*Prepared, *Trainer, float64) {
		m := clone()
		p, err := Prepare(m, r.QConfig())
		if err != nil {
			t.Fatal(err)
		}
		qt, err := NewTrainer(&NextTokenTask{LM: m, Train: data, First: 80, CalibIDs: cx[:1], CalibTargets: cy[:1]}, p, qcfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := qt.Fit(nil); err != nil {
			t.Fatal(err)
		}
		return p, qt, eval(qt)
	}
	p8, qt8, lq8 := qatRun(LMRecipe{WBits: 8, ABits: 8, LearnW: true, LearnA: true})
	qt8.Close()
	// The same training budget for PTQ: the weights of the W8A8 QAT run, then a 4-bit KV cache
	// calibrated after training.
	floatBase := base
	base = &graph.Checkpoint{}
	p8.Net.(*graph.LM).SaveState(base)
	l8t := ptq(LMRecipe{WBits: 8, ABits: 8})
	lpt := ptq(LMRecipe{WBits: 8, ABits: 8, KVBits: 4})
	base = floatBase
	p, qt, lq := qatRun(LMRecipe{WBits: 8, ABits: 8, KVBits: 4, LearnW: true, LearnA: true})
	defer qt.Close()
	after, err := p.Params("blk0.attn.k_cache")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("float %.4f: PTQ W8A8 %.4f, with KV4 %.4f (%+.4f)", lf, l8, lp, lp-l8)
	t.Logf("after 40 QAT steps: PTQ W8A8 %.4f, with KV4 %.4f (%+.4f); QAT W8A8 %.4f, QAT W8A8 KV4 %.4f (%+.4f); learned k_cache scales %v",
		l8t, lpt, lpt-l8t, lq8, lq, lq-lq8, after.Params)
	if !(lp > l8) || !(lpt > l8t) {
		t.Errorf("PTQ with a 4-bit KV cache (%v, %v) not worse than without (%v, %v): the comparison is void", lp, lpt, l8, l8t)
	}
	if !(lq < lp) || !(lq < lpt) {
		t.Errorf("QAT W8A8 KV4 loss %v not below PTQ W8A8 KV4 %v (after the same training: %v)", lq, lp, lpt)
	}
	if after.Bits != 4 || len(after.Params) != 2 || after.Range != quant.NarrowSigned(4) {
		t.Errorf("k_cache parameters %+v: want 2 symmetric 4-bit head scales", after)
	}
	if lr := p.Learnables(); !strings.Contains(mustJSON(t, learnableNames(lr)), "blk1.attn.v_cache.log_scale") {
		t.Errorf("learnables %v: no KV-cache scale", learnableNames(lr))
	}

	ck := qt.Checkpoint()
	if !strings.Contains(ck.Meta[MetaQConfig], `"kv":`) {
		t.Fatalf("QConfig JSON %s has no KV spec", ck.Meta[MetaQConfig])
	}
	qc, err := CheckpointQConfig(ck)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, qc), mustJSON(t, p.Config); a != b {
		t.Fatalf("restored QConfig %s, want %s", a, b)
	}
	n, err := graph.FromCheckpoint(ck)
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
	for _, site := range []string{"blk0.attn.k_cache", "blk0.attn.v_cache", "blk1.attn.k_cache", "blk1.attn.v_cache"} {
		a, _ := p.Params(site)
		b, err := p2.Params(site)
		if err != nil || mustJSON(t, a.Params) != mustJSON(t, b.Params) {
			t.Fatalf("%s: restored %+v (%v), want %+v", site, b.Params, err, a.Params)
		}
	}
	rt, err := NewTrainer(&NextTokenTask{LM: n.(*graph.LM)}, p2, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if l := eval(rt); math.Abs(l-lq) > 1e-6 {
		t.Fatalf("restored model: loss %v, live %v", l, lq)
	}
}

func learnableNames(ls []Learnable) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKVCacheConfig: KV specs that the runtime's cache cannot hold and KV on a CNN are errors; a
// QConfig without KV has no KV sites and encodes as before.
func TestKVCacheConfig(t *testing.T) {
	lm := smallLM(t)
	for _, sp := range []Spec{
		{Bits: 4, Method: fakequant.LSQ, LearnOffset: true, Scheme: SchemeAsymmetric},
		{Bits: 4, Method: fakequant.Observed, Scheme: SchemeAsymmetric},
		{Bits: 4, Method: fakequant.PACT},
		{Bits: 4, Method: fakequant.Observed, PerTensor: true},
		{Bits: 9, Method: fakequant.Observed},
	} {
		c := W8A8()
		c.KV = &sp
		if _, err := Prepare(lm, c); err == nil {
			t.Errorf("KV spec %+v accepted", sp)
		}
	}
	c := W8A8()
	c.KV = &Spec{Bits: 8, Method: fakequant.Observed}
	m, err := NewModel("bn-cnn", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(m, c); err == nil || !strings.Contains(err.Error(), "language model") {
		t.Errorf("KV on a CNN: %v", err)
	}
	p, err := Prepare(lm, W8A8())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sites) != len(lm.Sites()) || strings.Contains(mustJSON(t, W8A8()), "kv") {
		t.Errorf("a QConfig without KV: %d sites (model %d), JSON %s", len(p.Sites), len(lm.Sites()), mustJSON(t, W8A8()))
	}
	kc := LMRecipe{WBits: 8, ABits: 8, KVBits: 4}.QConfig()
	if d := kc.Describe(lm); !strings.Contains(d, "blk0.attn.v_cache    4-bit symmetric-narrow per-channel observed") {
		t.Errorf("Describe of a KV4 recipe:\n%s", d)
	}
	if got := (LMRecipe{WBits: 4, ABits: 8, Group: 32, KVBits: 4}).Bits(); got != "W4A8 g32 KV4" {
		t.Errorf("Bits() = %q", got)
	}
}
