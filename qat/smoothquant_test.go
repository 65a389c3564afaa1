package qat

import (
	"math"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lmLogits runs the float graph of m (built with o, Batch set here) on one batch and returns a
// float64 copy of the logits.
func lmLogits(t *testing.T, m *graph.LM, o graph.LMOptions, ids, tg []int) []float64 {
	t.Helper()
	o.Batch = len(ids) / m.Config.Ctx
	n, err := m.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetBatch(ids, tg); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	switch d := n.Logits.Value().Data().(type) {
	case []float64:
		return slices.Clone(d)
	case []float32:
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x)
		}
		return v
	}
	t.Fatalf("logits of type %T", n.Logits.Value().Data())
	return nil
}

// maxRelDiff returns max|a-b| / max|a|.
func maxRelDiff(a, b []float64) float64 {
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
		m = max(m, math.Abs(a[i]))
	}
	return d / m
}

// outlierLM returns a float64 LM whose residual stream has outlier channels (the embedding
// columns 3 and 11 scaled by 20), so that SmoothQuant has work to do.
func outlierLM(t *testing.T) *graph.LM {
	m := gptqLM(t, tensor.Float64, 7)
	emb := m.Param("tok_emb.weight").Value.Data().([]float64)
	D := m.Config.Dim
	for i := range emb {
		if j := i % D; j == 3 || j == 11 {
			emb[i] *= 20
		}
	}
	return m
}

func TestSmoothQuant(t *testing.T) {
	for _, alpha := range []float64{0.5, 0.8, 0.2} {
		m := outlierLM(t)
		batches := tokenBatches(m, 2, 5)
		ids, tg := batches(0)
		before := lmLogits(t, m, graph.LMOptions{}, ids, tg)
		st, err := CollectLMStats(m, graph.LMOptions{Batch: 2}, batches, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		scales, err := SmoothQuant(m, st.AbsMax, alpha)
		if err != nil {
			t.Fatal(err)
		}
		if len(scales) != 4*2+1 {
			t.Fatalf("alpha %v: %d sites smoothed, want 9", alpha, len(scales))
		}
		after := lmLogits(t, m, graph.LMOptions{}, ids, tg)
		if d := maxRelDiff(before, after); d > 1e-5 {
			t.Fatalf("alpha %v: smoothing changed the logits by %g relative", alpha, d)
		}
		st2, err := CollectLMStats(m, graph.LMOptions{Batch: 2}, batches, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		// The formula predicts, with X = max|X_j| and W = max|W_j| before and s_j = X^a / W^(1-a):
		// X' = X/s_j = (X W)^(1-a) and W' = W s_j = (X W)^a, so with P = X' W' (= X W) measured
		// after smoothing, X' = P^(1-a); and the activation maxima shrink by exactly s_j.
		for site, s := range scales {
			wm := make([]float64, len(s))
			for _, l := range m.Linears() {
				if l.Input != site {
					continue
				}
				for i, w := range m.Param(l.Name + ".weight").Value.Data().([]float64) {
					wm[i%l.In] = max(wm[i%l.In], math.Abs(w))
				}
			}
			for j := range s {
				x0, x1 := st.AbsMax[site][j], st2.AbsMax[site][j]
				if r := x1 / x0; math.Abs(r*s[j]-1) > 1e-6 {
					t.Fatalf("alpha %v, %s channel %d: max|X| shrank by %v, want 1/s = %v", alpha, site, j, r, 1/s[j])
				}
				want := math.Pow(x1*wm[j], 1-alpha)
				if math.Abs(x1-want) > 1e-6*want {
					t.Fatalf("alpha %v, %s channel %d: max|X'| = %v, formula predicts %v (max|W'| %v)", alpha, site, j, x1, want, wm[j])
				}
			}
		}
	}
}

// TestSmoothQuantOutlierRatio checks the method's point: on the outlier site, the ratio of the
// largest to the median channel maximum shrinks (at alpha 0.5 to about its square root).
func TestSmoothQuantOutlierRatio(t *testing.T) {
	m := outlierLM(t)
	batches := tokenBatches(m, 2, 5)
	st, err := CollectLMStats(m, graph.LMOptions{Batch: 2}, batches, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SmoothQuant(m, st.AbsMax, 0.5); err != nil {
		t.Fatal(err)
	}
	st2, err := CollectLMStats(m, graph.LMOptions{Batch: 2}, batches, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	spread := func(v []float64) float64 {
		s := slices.Sorted(slices.Values(v))
		return s[len(s)-1] / s[len(s)/2]
	}
	r0, r1 := spread(st.AbsMax["blk0.attn.in"]), spread(st2.AbsMax["blk0.attn.in"])
	if r0 < 4 || r1 > 0.6*r0 {
		t.Fatalf("outlier spread max/median of blk0.attn.in: %.2f before, %.2f after", r0, r1)
	}
}

func TestSmoothQuantErrors(t *testing.T) {
	m := outlierLM(t)
	st, err := CollectLMStats(m, graph.LMOptions{Batch: 2}, tokenBatches(m, 2, 5), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SmoothQuant(m, st.AbsMax, 1.5); err == nil {
		t.Fatal("alpha 1.5: no error")
	}
	snapshot := map[string][]float64{}
	for _, p := range m.Params() {
		snapshot[p.Name] = slices.Clone(p.Value.Data().([]float64))
	}
	// Bad statistics at the first site in graph order, the last processed: an error and no
	// parameter changed (the folds of the sites processed before are not stored).
	for _, bad := range [][]float64{{math.NaN()}, {math.Inf(1)}, {-1}, nil} {
		st3 := map[string][]float64{}
		for k, v := range st.AbsMax {
			st3[k] = slices.Clone(v)
		}
		if bad == nil {
			st3["blk0.attn.in"] = st3["blk0.attn.in"][1:]
		} else {
			st3["blk0.attn.in"][0] = bad[0]
		}
		if _, err := SmoothQuant(m, st3, 0.5); err == nil {
			t.Fatalf("blk0.attn.in statistic %v: no error", bad)
		}
		for _, p := range m.Params() {
			if !slices.Equal(snapshot[p.Name], p.Value.Data().([]float64)) {
				t.Fatalf("statistic %v: SmoothQuant failed but changed %s", bad, p.Name)
			}
		}
	}
	// Only the sites with statistics are smoothed.
	sc, err := SmoothQuant(m, map[string][]float64{"head.in": st.AbsMax["head.in"]}, 0.5)
	if err != nil || len(sc) != 1 {
		t.Fatalf("one site: %d scales, %v", len(sc), err)
	}
}
