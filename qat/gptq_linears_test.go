package qat

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

func gptqLM(t *testing.T, dt tensor.Dtype, seed uint64) *graph.LM {
	t.Helper()
	m, err := graph.NewLM("t", graph.LMConfig{Vocab: 24, Dim: 16, Layers: 2, Heads: 2, Hidden: 32, Ctx: 8}, dt, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tokenBatches(m *graph.LM, batch int, seed uint64) func(i int) ([]int, []int) {
	return func(i int) ([]int, []int) {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		n := batch * m.Config.Ctx
		ids, tg := make([]int, n), make([]int, n)
		for j := range ids {
			ids[j], tg[j] = rng.IntN(m.Config.Vocab), rng.IntN(m.Config.Vocab)
		}
		return ids, tg
	}
}

func TestCollectLMStatsFirstSite(t *testing.T) {
	// The input of block 0's attention is RMSNorm(embedding rows) * gain: computed here by hand.
	m := gptqLM(t, tensor.Float64, 1)
	gain := m.Param("blk0.attn_norm.gain").Value.Data().([]float64)
	for i := range gain {
		gain[i] = 0.5 + float64(i)/10
	}
	batches := tokenBatches(m, 2, 3)
	st, err := CollectLMStats(m, graph.LMOptions{Batch: 2}, batches, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	D := m.Config.Dim
	emb := m.Param("tok_emb.weight").Value.Data().([]float64)
	want := NewLinearInputStats(true)
	for b := 0; b < 2; b++ {
		ids, _ := batches(b)
		x := make([]float64, len(ids)*D)
		for r, id := range ids {
			row := emb[id*D : (id+1)*D]
			var ms float64
			for _, v := range row {
				ms += v * v / float64(D)
			}
			for j, v := range row {
				x[r*D+j] = v / math.Sqrt(ms+m.Config.Eps) * gain[j]
			}
		}
		if err := want.ObserveRows("s", x, D); err != nil {
			t.Fatal(err)
		}
	}
	site := "blk0.attn.in"
	if st.Rows[site] != want.Rows["s"] {
		t.Fatalf("rows %d, want %d", st.Rows[site], want.Rows["s"])
	}
	for j, v := range want.AbsMax["s"] {
		if math.Abs(st.AbsMax[site][j]-v) > 1e-12*(1+v) {
			t.Fatalf("absmax[%d] = %v, want %v", j, st.AbsMax[site][j], v)
		}
	}
	for j, v := range want.XtX["s"] {
		if math.Abs(st.XtX[site][j]-v) > 1e-9*(1+math.Abs(v)) {
			t.Fatalf("X^T X [%d] = %v, want %v", j, st.XtX[site][j], v)
		}
	}
	if got := len(st.AbsMax); got != 4*2+1 {
		t.Fatalf("%d sites with statistics, want 9", got)
	}
}

// hessianLoss returns tr((W-Q) H (W-Q)^T) = the expected output error for inputs with Hessian H.
func hessianLoss(w, q, h []float64, out, in int) float64 {
	var s float64
	for r := 0; r < out; r++ {
		for i := 0; i < in; i++ {
			di := w[r*in+i] - q[r*in+i]
			for j := 0; j < in; j++ {
				s += di * h[i*in+j] * (w[r*in+j] - q[r*in+j])
			}
		}
	}
	return s
}

func TestGPTQLinearsOnLM(t *testing.T) {
	m := gptqLM(t, tensor.Float32, 2)
	st, err := CollectLMStats(m, graph.LMOptions{Batch: 4}, tokenBatches(m, 4, 9), 3, true)
	if err != nil {
		t.Fatal(err)
	}
	orig := map[string][]float64{}
	for _, l := range m.Linears() {
		orig[l.Name], _ = paramFloat64s(m.Param(l.Name + ".weight"))
	}
	cfg := func(l graph.LMLinear) (GPTQConfig, bool) {
		if l.Name == "head" {
			return GPTQConfig{}, false
		}
		return GPTQConfig{Bits: 3, GroupSize: 8}, true
	}
	qs, err := GPTQLinears(m, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != len(m.Linears())-1 {
		t.Fatalf("%d weights quantized, want %d", len(qs), len(m.Linears())-1)
	}
	var lg, lr float64
	for _, l := range m.Linears() {
		w, _ := paramFloat64s(m.Param(l.Name + ".weight"))
		q, ok := qs[l.Name+".weight"]
		if !ok {
			if l.Name != "head" {
				t.Fatalf("%s not quantized", l.Name)
			}
			for i := range w {
				if w[i] != orig[l.Name][i] {
					t.Fatal("head changed")
				}
			}
			continue
		}
		for i := range w {
			if w[i] != float64(float32(q.Weights[i])) {
				t.Fatalf("%s: parameter is not the dequantized GPTQ weight", l.Name)
			}
		}
		rtn, err := RoundToNearest(orig[l.Name], l.Out, l.In, GPTQConfig{Bits: 3, GroupSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := st.Hessian(l.Input)
		lg += hessianLoss(orig[l.Name], q.Weights, h, l.Out, l.In)
		lr += hessianLoss(orig[l.Name], rtn.Weights, h, l.Out, l.In)
	}
	t.Logf("summed layer-wise output error: GPTQ %.4g, RTN %.4g", lg, lr)
	if !(lg < lr) {
		t.Fatalf("GPTQ's summed layer error %v is not below RTN's %v", lg, lr)
	}
	bad := NewLinearInputStats(false)
	if _, err := GPTQLinears(m, bad, cfg); err == nil {
		t.Fatal("statistics without Gram matrices: no error")
	}
}
