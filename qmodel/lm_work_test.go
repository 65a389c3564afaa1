package qmodel

import (
	"strings"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

var lmAct = quant.Params{Scale: 0.05}

// lmModel builds a valid language model: token ids -> Embedding [2, d] -> mid -> LMHead [2, K]
// -> Dequantize, where mid adds the ops under test and returns an int8 vector.
func lmModel(t *testing.T, d int, mid func(b *Builder, x TensorID) TensorID) *Model {
	t.Helper()
	b := NewBuilder("lm-work")
	ids := b.TokenInput("ids")
	emb := GroupedWeights{Weights: Weights{Values: make([]int8, 2*d), Shape: []int{2, d}, Scales: []float32{0.01}, Int4: true}}
	x := mid(b, b.Embedding("emb", ids, emb, lmAct))
	k := b.tensor(x).Shape[0]
	head := GroupedWeights{Weights: Weights{Values: make([]int8, 2*k), Shape: []int{2, k}, Scales: []float32{0.01}, Int4: true}}
	b.Output(b.Dequantize("logits", b.LMHead("head", x, head)))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// embedding adds an Embedding of width d reading the model's token ids (tensor 0).
func embedding(b *Builder, name string, d int) TensorID {
	w := GroupedWeights{Weights: Weights{Values: make([]int8, 2*d), Shape: []int{2, d}, Scales: []float32{0.01}, Int4: true}}
	return b.Embedding(name, 0, w, lmAct)
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// TestLMOpWorkPerKind ("extend the same budgets to every op the LM runtime adds", issue 14): for
// every LM op kind, a cheap and an expensive variant of one model; the op's work matches its
// hand-computed count from the op's definition, and a budget that admits the cheap model refuses
// the expensive one with an error naming the budget.
func TestLMOpWorkPerKind(t *testing.T) {
	type variant struct {
		m    *Model
		op   string
		want Work
	}
	for _, c := range []struct {
		kind OpKind
		mk   func(big bool) variant
	}{
		{OpEmbedding, func(big bool) variant {
			d := map[bool]int{false: 8, true: 4096}[big]
			return variant{lmModel(t, d, func(_ *Builder, x TensorID) TensorID { return x }), "emb", Work{Elements: 1 + int64(d)}}
		}},
		{OpRMSNorm, func(big bool) variant {
			n := map[bool]int{false: 1, true: 64}[big]
			return variant{lmModel(t, 64, func(b *Builder, x TensorID) TensorID {
				for i := 0; i < n; i++ {
					x = b.RMSNorm("norm"+string(rune('a'+i%26))+string(rune('a'+i/26)), x, ones(64), 1e-5, lmAct)
				}
				return x
			}), "normaa", Work{Elements: 64 + 64}}
		}},
		{OpLinear, func(big bool) variant {
			n := map[bool]int{false: 8, true: 4096}[big]
			w := GroupedWeights{Weights: Weights{Values: make([]int8, n*64), Shape: []int{n, 64}, Scales: []float32{0.01}, Int4: true}}
			return variant{lmModel(t, 64, func(b *Builder, x TensorID) TensorID { return b.Linear("lin", x, w, lmAct) }), "lin", Work{MACs: int64(n) * 64, Elements: int64(n)}}
		}},
		{OpLMHead, func(big bool) variant {
			k := map[bool]int{false: 8, true: 4096}[big]
			return variant{lmModel(t, k, func(_ *Builder, x TensorID) TensorID { return x }), "head", Work{MACs: 2 * int64(k), Elements: 2}}
		}},
		{OpRoPE, func(big bool) variant {
			n := map[bool]int{false: 1, true: 64}[big]
			return variant{lmModel(t, 64, func(b *Builder, x TensorID) TensorID {
				for i := 0; i < n; i++ {
					x = b.RoPE("rope"+string(rune('a'+i%26))+string(rune('a'+i/26)), x, 4, 16, 128, 10000, lmAct)
				}
				return x
			}), "ropeaa", Work{Elements: 64 + 64 + 128*8}} // input, output, and the table of 128 positions x 8 pairs
		}},
		{OpAttention, func(big bool) variant {
			seq := map[bool]int{false: 16, true: 1 << 14}[big]
			return variant{lmModel(t, 64, func(b *Builder, q TensorID) TensorID {
				k, v := embedding(b, "k", 32), embedding(b, "v", 32)
				return b.Attention("attn", q, k, v, AttentionOptions{Heads: 4, KVHeads: 2, HeadDim: 16, MaxSeq: seq,
					KCacheScales: []float32{0.02, 0.02}, VCacheScales: []float32{0.02, 0.02}}, lmAct)
			}), "attn", Work{MACs: 2 * 4 * int64(seq) * 16, WindowReads: 4 * int64(seq), Elements: 64}}
		}},
		{OpSwiGLU, func(big bool) variant {
			f := map[bool]int{false: 8, true: 4096}[big]
			return variant{lmModel(t, f, func(b *Builder, x TensorID) TensorID {
				return b.SwiGLU("swiglu", x, embedding(b, "up", f), lmAct)
			}), "swiglu", Work{Elements: 3 * int64(f)}}
		}},
		{OpHadamard, func(big bool) variant {
			block := map[bool]int{false: 2, true: 1 << 12}[big]
			// log2(2) = 1 butterfly pass + the write; log2(4096) = 12 + 1.
			passes := map[bool]int64{false: 2, true: 13}[big]
			return variant{lmModel(t, 4096, func(b *Builder, x TensorID) TensorID { return b.Hadamard("had", x, block, lmAct) }), "had", Work{Elements: 4096 * passes}}
		}},
	} {
		t.Run(c.kind.String(), func(t *testing.T) {
			small, big := c.mk(false), c.mk(true)
			for _, v := range []variant{small, big} {
				i := opIndex(v.m, v.op)
				if i < 0 || v.m.Ops[i].Kind != c.kind {
					t.Fatalf("no %v op %q", c.kind, v.op)
				}
				if got := v.m.OpWork(&v.m.Ops[i]); got != v.want {
					t.Errorf("%v %q: work %+v, want %+v", c.kind, v.op, got, v.want)
				}
			}
			st, _ := small.m.Work()
			bt, _ := big.m.Work()
			if bt.Total() <= st.Total() {
				t.Fatalf("expensive variant %d <= cheap %d", bt.Total(), st.Total())
			}
			if err := small.m.CheckWork(st.Total()); err != nil {
				t.Errorf("cheap variant at its own work: %v", err)
			}
			if err := big.m.CheckWork(st.Total()); err == nil || !strings.Contains(err.Error(), "work budget") {
				t.Errorf("expensive variant (%d units) under the cheap one's budget (%d): %v", bt.Total(), st.Total(), err)
			}
		})
	}
}

// TestLMAttentionOverDefaultBudget: the one LM op whose per-token work validation does not bound
// below the default budget (a full 65536-position context over 64 heads of 1024) is refused by
// the default budget, from a file of about 130 KB (two int4 tables of 2 x 65536); the same model with a 4096-position context is
// admitted.
func TestLMAttentionOverDefaultBudget(t *testing.T) {
	mk := func(seq int) *Model {
		return lmModel(t, 1<<16, func(b *Builder, q TensorID) TensorID {
			k, v := embedding(b, "k", 1024), embedding(b, "v", 1024)
			return b.Attention("attn", q, k, v, AttentionOptions{Heads: 64, KVHeads: 1, HeadDim: 1024, MaxSeq: seq,
				KCacheScales: []float32{0.02}, VCacheScales: []float32{0.02}}, lmAct)
		})
	}
	big := mk(MaxContext)
	enc, err := Encode(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > 160<<10 {
		t.Errorf("the model is %d bytes; the point is that it is small", len(enc))
	}
	if err := big.CheckWork(0); err == nil || !strings.Contains(err.Error(), `op 3 (Attention "attn")`) {
		t.Errorf("default budget: %v", err)
	}
	if err := mk(4096).CheckWork(0); err != nil {
		t.Errorf("4096 positions: %v", err)
	}
}

// TestRoPETablesBounded: RoPE tables are built at load (MaxSeq*HeadDim/2 entries each); a model of
// a few KB with many RoPE ops of different thetas would need gigabytes, so validation bounds the
// distinct tables together, while ops sharing one table (every layer of a real model) count once.
func TestRoPETablesBounded(t *testing.T) {
	const ops = 8 // 8 distinct tables of 65536 positions x 256 pairs = 2^27 entries > MaxRoPETables
	mk := func(distinct bool) (*Model, error) {
		b := NewBuilder("rope-tables")
		ids := b.TokenInput("ids")
		x := b.Embedding("emb", ids, GroupedWeights{Weights: Weights{Values: make([]int8, 2*512), Shape: []int{2, 512}, Scales: []float32{0.01}, Int4: true}}, lmAct)
		for i := 0; i < ops; i++ {
			theta := float32(10000)
			if distinct {
				theta += float32(i)
			}
			x = b.RoPE("rope"+string(rune('a'+i)), x, 1, 512, MaxContext, theta, lmAct)
		}
		b.Output(b.Dequantize("logits", b.LMHead("head", x, GroupedWeights{Weights: Weights{Values: make([]int8, 2*512), Shape: []int{2, 512}, Scales: []float32{0.01}, Int4: true}})))
		return b.Build()
	}
	if _, err := mk(true); err == nil || !strings.Contains(err.Error(), "RoPE tables") {
		t.Errorf("%d distinct tables of 2^24 entries: %v", ops, err)
	}
	m, err := mk(false)
	if err != nil {
		t.Fatalf("%d RoPE ops sharing one table: %v", ops, err)
	}
	if n := m.RoPETableEntries(); n != MaxContext*256 {
		t.Errorf("RoPETableEntries %d, want %d (one shared table)", n, MaxContext*256)
	}
}

// opIndex returns the index of the op named name, or -1.
func opIndex(m *Model, name string) int {
	for i := range m.Ops {
		if m.Ops[i].Name == name {
			return i
		}
	}
	return -1
}
