package qmodel

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// tinyLM builds a one-block language model that uses every LM op: int4 per-group embedding and
// linears, int8 per-channel linears, grouped-query attention and an online Hadamard.
func tinyLM(t testing.TB) *Model {
	r := rand.New(rand.NewPCG(3, 4))
	const v, d, hid, heads, hd, ctx = 16, 16, 32, 2, 8, 8
	gw := func(n, k int, int4 bool, group int) GroupedWeights {
		lim := 127
		if int4 {
			lim = 7
		}
		w := GroupedWeights{Weights: Weights{Values: randInt8s(r, n*k, lim), Shape: []int{n, k}, Int4: int4}}
		w.Scales = make([]float32, n)
		for i := range w.Scales {
			w.Scales[i] = 0.01 + 0.01*r.Float32()
		}
		if group > 0 {
			w.GroupSize = group
			w.GroupScales = make([]int32, n*k/group)
			for i := range w.GroupScales {
				w.GroupScales[i] = int32(1 + r.IntN(255))
			}
		}
		return w
	}
	p := func(s float32, z int32) quant.Params { return quant.Params{Scale: s, ZeroPoint: z} }
	b := NewBuilder("tiny-lm")
	ids := b.TokenInput("tokens")
	h := b.Embedding("tok_emb", ids, gw(v, d, true, 8), p(0.05, 0))
	x := b.RMSNorm("blk0.attn_norm", h, []float32{1, -0.5, 2, 1, 1, 1, 1, 1, 0.25, 1, 1, 1, 1, 1, 1, 3}, 1e-5, p(0.03, 1))
	q := b.Linear("blk0.attn.wq", x, gw(heads*hd, d, false, 0), p(0.04, 0))
	k := b.Linear("blk0.attn.wk", x, gw(hd, d, true, 8), p(0.04, 0))
	vv := b.Linear("blk0.attn.wv", x, gw(hd, d, true, 0), p(0.04, -2))
	q = b.RoPE("blk0.attn.rope_q", q, heads, hd, ctx, 10000, p(0.04, 0))
	k = b.RoPE("blk0.attn.rope_k", k, 1, hd, ctx, 10000, p(0.04, 0))
	a := b.Attention("blk0.attn", q, k, vv, AttentionOptions{Heads: heads, KVHeads: 1, HeadDim: hd, MaxSeq: ctx,
		KCacheScales: []float32{0.03}, VCacheScales: []float32{0.02}}, p(0.02, 0))
	o := b.Linear("blk0.attn.wo", a, gw(d, heads*hd, false, 0), p(0.05, 0))
	h = b.Add("blk0.attn.res", h, o, ActNone, p(0.06, 0))
	x = b.RMSNorm("blk0.mlp_norm", h, make16(1), 1e-5, p(0.03, 0))
	g := b.Linear("blk0.mlp.w1", x, gw(hid, d, true, 16), p(0.05, 3))
	u := b.Linear("blk0.mlp.w3", x, gw(hid, d, false, 0), p(0.05, 0))
	s := b.SwiGLU("blk0.mlp.swiglu", g, u, p(0.02, 0))
	s = b.Hadamard("blk0.mlp.hadamard", s, 32, p(0.02, 0))
	o = b.Linear("blk0.mlp.w2", s, gw(d, hid, true, 32), p(0.05, 0))
	h = b.Add("blk0.mlp.res", h, o, ActNone, p(0.07, 0))
	x = b.RMSNorm("norm", h, make16(1), 1e-5, p(0.03, 0))
	lg := b.LMHead("head", x, gw(v, d, false, 0))
	b.Output(b.Dequantize("logits", lg))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func make16(v float32) []float32 {
	g := make([]float32, 16)
	for i := range g {
		g[i] = v
	}
	return g
}

func TestLMRoundTrip(t *testing.T) {
	m := tinyLM(t)
	if !m.IsLM() || m.ContextLength() != 8 || m.KVCacheBytes() != 2*8*8 {
		t.Fatalf("IsLM %v, context %d, KV bytes %d", m.IsLM(), m.ContextLength(), m.KVCacheBytes())
	}
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, got) {
		t.Fatal("decoded LM differs from the encoded one")
	}
	enc2, _ := Encode(got)
	if !bytes.Equal(enc, enc2) {
		t.Fatal("re-encoding gives different bytes")
	}
	if tinyModel(t).IsLM() {
		t.Fatal("the CNN reports IsLM")
	}
}

func TestLMValidateRejects(t *testing.T) {
	find := func(m *Model, name string) *Op {
		for i := range m.Ops {
			if m.Ops[i].Name == name {
				return &m.Ops[i]
			}
		}
		t.Fatalf("no op %q", name)
		return nil
	}
	tensor := func(m *Model, name string) *Tensor { return &m.Tensors[m.TensorByName(name)] }
	cases := []struct {
		name, want string
		mutate     func(m *Model)
	}{
		{"huge context", "context length", func(m *Model) { find(m, "blk0.attn").LM.MaxSeq = 1 << 30 }},
		{"huge rope context", "context length", func(m *Model) { find(m, "blk0.attn.rope_q").LM.MaxSeq = MaxContext + 1 }},
		{"zero context", "context length", func(m *Model) { find(m, "blk0.attn").LM.MaxSeq = 0 }},
		{"kv heads", "key/value heads", func(m *Model) { find(m, "blk0.attn").LM.KVHeads = 3 }},
		{"heads tile", "do not tile", func(m *Model) { find(m, "blk0.attn.rope_q").LM.Heads = 3 }},
		{"odd rope head", "even head dimension", func(m *Model) {
			op := find(m, "blk0.attn.rope_k")
			op.LM.Heads, op.LM.HeadDim = 8, 1
		}},
		{"theta", "theta", func(m *Model) { find(m, "blk0.attn.rope_q").LM.Theta = float32(math.NaN()) }},
		{"eps", "epsilon", func(m *Model) { find(m, "norm").LM.Eps = 0 }},
		{"block", "power of two", func(m *Model) { find(m, "blk0.mlp.hadamard").LM.Block = 12 }},
		{"block size", "power of two", func(m *Model) { find(m, "blk0.mlp.hadamard").LM.Block = 64 }},
		{"stray attr", "only", func(m *Model) { find(m, "blk0.mlp.swiglu").LM.Heads = 1 }},
		{"lm attr on add", "language-model attributes", func(m *Model) { find(m, "blk0.attn.res").LM.MaxSeq = 4 }},
		{"gain nan", "gain", func(m *Model) {
			copy(tensor(m, "norm/gain").Data, Float32Data([]float32{float32(math.NaN())}))
		}},
		{"group scale", "outside [0,", func(m *Model) {
			copy(tensor(m, "blk0.mlp.w1/group_scales").Data, Int32Data([]int32{MaxGroupScale + 1}))
		}},
		{"cache scale", "cache scales", func(m *Model) {
			copy(tensor(m, "blk0.attn/k_cache_scales").Data, Float32Data([]float32{0}))
		}},
		{"ids dtype", "token ids", func(m *Model) { tensor(m, "tokens").Quant = PerTensor(2, 0) }},
		{"head scale", "want input scale * weight scale", func(m *Model) { tensor(m, "head").Quant.Scales[3] *= 2 }},
		{"ids to linear", "must be int8", func(m *Model) { find(m, "blk0.attn.wq").Inputs[0] = m.Inputs[0] }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := tinyLM(t)
			c.mutate(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			// The same model through the file is rejected by Decode as well.
			if _, derr := Decode(encode(m)); derr == nil && c.name != "lm attr on add" { // the file has no LM attributes for Add
				t.Fatal("Decode accepted it")
			}
		})
	}
}

// TestLMHostileNoAllocation: a tiny file that claims a huge KV cache or RoPE table is rejected
// by Decode without allocating for it.
func TestLMHostileNoAllocation(t *testing.T) {
	m := tinyLM(t)
	for i := range m.Ops {
		if m.Ops[i].Kind == OpAttention {
			m.Ops[i].LM.MaxSeq = MaxContext
			m.Ops[i].LM.HeadDim = 1 << 20
		}
	}
	b := encode(m)
	allocs := testing.AllocsPerRun(3, func() { Decode(b) })
	if _, err := Decode(b); err == nil {
		t.Fatal("accepted")
	}
	if allocs > 2000 {
		t.Fatalf("%v allocations", allocs)
	}
}

func TestGroupScalesOverflow(t *testing.T) {
	g := &Tensor{Name: "g", DType: Int32, Shape: []int{1, 1}, Quant: PerTensor(1, 0), Data: Int32Data([]int32{MaxGroupScale})}
	if _, err := checkGroupScales(g, 1, 64); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Fatalf("32767*64*7*255 > 2^31 accepted: %v", err)
	}
	if gs, err := checkGroupScales(g, 1, 32); err != nil || gs != 32 {
		t.Fatalf("32767*32*7*255 < 2^31 rejected: %v", err)
	}
	g.Data = Int32Data([]int32{5})
	if _, err := checkGroupScales(g, 1, 12); err == nil {
		t.Fatal("group of 12 accepted")
	}
}
