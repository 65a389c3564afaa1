package llama

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// handGGUF writes a small llama GGUF byte by byte, without the gguf package's encoder: tensors in
// another order than Encode's, alignment 64, an F16 token embedding, no output.weight (llama.cpp
// ties it to token_embd), i32-free metadata in another order.
func handGGUF(t *testing.T, D, F, H, ctx int, rng *rand.Rand) []byte {
	t.Helper()
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	type tensor struct {
		name string
		ne   []uint64
		typ  uint32
		data []byte
	}
	f32s := func(n int, std float64) []byte {
		var o bytes.Buffer
		for i := 0; i < n; i++ {
			binary.Write(&o, binary.LittleEndian, float32(rng.NormFloat64()*std))
		}
		return o.Bytes()
	}
	ones := func(n int) []byte {
		var o bytes.Buffer
		for i := 0; i < n; i++ {
			binary.Write(&o, binary.LittleEndian, float32(1+0.1*rng.NormFloat64()))
		}
		return o.Bytes()
	}
	var emb bytes.Buffer
	for i := 0; i < 256*D; i++ {
		// half-precision by hand: values k/512 with |k| < 1024 are exact halves
		k := rng.IntN(257) - 128
		h := halfOf(float64(k) / 512)
		binary.Write(&emb, binary.LittleEndian, h)
	}
	s := 1 / math.Sqrt(float64(D))
	ts := []tensor{
		{"output_norm.weight", []uint64{uint64(D)}, 0, ones(D)},
		{"blk.0.ffn_down.weight", []uint64{uint64(F), uint64(D)}, 0, f32s(F*D, 1/math.Sqrt(float64(F)))},
		{"blk.0.ffn_up.weight", []uint64{uint64(D), uint64(F)}, 0, f32s(F*D, s)},
		{"blk.0.ffn_gate.weight", []uint64{uint64(D), uint64(F)}, 0, f32s(F*D, s)},
		{"blk.0.ffn_norm.weight", []uint64{uint64(D)}, 0, ones(D)},
		{"blk.0.attn_output.weight", []uint64{uint64(D), uint64(D)}, 0, f32s(D*D, s)},
		{"blk.0.attn_v.weight", []uint64{uint64(D), uint64(D)}, 0, f32s(D*D, s)},
		{"blk.0.attn_k.weight", []uint64{uint64(D), uint64(D)}, 0, f32s(D*D, s)},
		{"blk.0.attn_q.weight", []uint64{uint64(D), uint64(D)}, 0, f32s(D*D, s)},
		{"blk.0.attn_norm.weight", []uint64{uint64(D)}, 0, ones(D)},
		{"token_embd.weight", []uint64{uint64(D), 256}, 1, emb.Bytes()},
	}
	toks := ByteTokens()
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(len(ts)))
	le(uint64(14))
	kvU32 := func(k string, v uint32) { str(k); le(uint32(4)); le(v) }
	kvF32 := func(k string, v float32) { str(k); le(uint32(6)); le(v) }
	kvStr := func(k, v string) { str(k); le(uint32(8)); str(v) }
	kvStr("tokenizer.ggml.model", "gpt2")
	str("tokenizer.ggml.tokens")
	le(uint32(9))
	le(uint32(8))
	le(uint64(256))
	for _, tk := range toks {
		str(tk)
	}
	str("tokenizer.ggml.merges")
	le(uint32(9))
	le(uint32(8))
	le(uint64(0))
	kvU32("tokenizer.ggml.bos_token_id", 10)
	kvU32("tokenizer.ggml.eos_token_id", 10)
	kvU32("general.alignment", 64)
	kvF32("llama.attention.layer_norm_rms_epsilon", 1e-6)
	kvF32("llama.rope.freq_base", 500)
	kvU32("llama.attention.head_count", uint32(H))
	kvU32("llama.feed_forward_length", uint32(F))
	kvU32("llama.block_count", 1)
	kvU32("llama.embedding_length", uint32(D))
	kvU32("llama.context_length", uint32(ctx))
	kvStr("general.architecture", "llama")
	var off uint64
	for _, tn := range ts {
		str(tn.name)
		le(uint32(len(tn.ne)))
		for _, d := range tn.ne {
			le(d)
		}
		le(tn.typ)
		le(off)
		off += (uint64(len(tn.data)) + 63) / 64 * 64
	}
	for b.Len()%64 != 0 {
		b.WriteByte(0)
	}
	for _, tn := range ts {
		b.Write(tn.data)
		for b.Len()%64 != 0 {
			b.WriteByte(0)
		}
	}
	return b.Bytes()
}

// headF16 rounds the input of the output projection to half precision, as ggml does for a
// matmul with F16 weights.
type headF16 struct{}

func (headF16) Quantize(s graph.Site, x *G.Node) (*G.Node, error) {
	if s.Name == "head.in" {
		return fakequant.GGMLFakeQuant(x, fakequant.GGMLF16)
	}
	return x, nil
}

// halfOf encodes v (a value exactly representable in half precision, |v| < 2) as a half.
func halfOf(v float64) uint16 {
	if v == 0 {
		return 0
	}
	var sign uint16
	if v < 0 {
		sign, v = 0x8000, -v
	}
	e := int(math.Floor(math.Log2(v)))
	m := uint16(math.Round((v/math.Ldexp(1, e) - 1) * 1024))
	return sign | uint16(e+15)<<10 | m
}

// A file from an independent writer loads with the right shapes and gives, in qatgo, the
// logits llama.cpp computes from it.
func TestImportIndependentFile(t *testing.T) {
	const D, F, H, ctx = 32, 64, 2, 40
	data := handGGUF(t, D, F, H, ctx, rand.New(rand.NewPCG(11, 12)))
	path := filepath.Join(t.TempDir(), "hand.gguf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Vocab: 256, Dim: D, Layers: 1, Heads: H, KVHeads: H, Hidden: F, Ctx: ctx, RoPEBase: 500, Eps: float64(float32(1e-6))}
	if w.Config != want {
		t.Fatalf("config %+v, want %+v", w.Config, want)
	}
	f, _ := gguf.Decode(data)
	embT := f.Tensor("token_embd.weight")
	emb, _ := embT.Float32s()
	if got := w.Tensors["output.weight"]; len(got) != 256*D || got[5] != emb[5] {
		t.Fatal("output.weight is not tied to token_embd")
	}
	m, err := w.LM("hand")
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Param("blk0.mlp.w2.weight").Value.Shape(); s[0] != D || s[1] != F {
		t.Fatalf("ffn_down as LM weight %v, want [%d %d]", s, D, F)
	}
	seq := testTokens(ctx, 5)
	res := runLlamaCpp(t, llamaRequest{Model: path, Sequences: [][]int{seq}})
	// The tied output weight is F16, so llama.cpp rounds the head's input to F16 before the matmul.
	d := maxAbsDiff(res.LogProbs[0], lmLogProbs(t, m, headF16{}, seq))
	t.Logf("independent file: max |log p(llama.cpp) - log p(qatgo)| = %.3g", d)
	if d > 1e-4 {
		t.Errorf("llama.cpp and qatgo differ by %.3g on the independent file (limit 1e-4)", d)
	}
}
