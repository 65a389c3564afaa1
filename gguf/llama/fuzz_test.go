package llama

import (
	"fmt"
	"math"
	"testing"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// FuzzDecode checks that reading untrusted GGUF bytes as a llama model never panics: it either
// fails with an error, or gives weights that pass Check, write back (F32) and read again to the
// same config and bit-identical tensors, and (without grouped-query attention) build a graph.LM
// holding those tensors. The seeds (below, and F16 and Q8_0 files in testdata/fuzz/FuzzDecode) are
// small models (a few KB): the fuzzing engine minimizes every new input for up to
// -fuzzminimizetime (60 s by default) and spent most of a run doing that on 100 KB seeds; with
// -fuzzminimizetime 5s it fuzzes rather than minimizes.
func FuzzDecode(f *testing.F) {
	m, err := graph.NewLM("fuzz", graph.LMConfig{Vocab: 8, Dim: 4, Layers: 1, Heads: 2, Hidden: 4, Ctx: 4}, tensor.Float32, 1)
	if err != nil {
		f.Fatal(err)
	}
	w, err := FromLM(m)
	if err != nil {
		f.Fatal(err)
	}
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = fmt.Sprint("t", i)
	}
	w.Meta = map[string]any{keyTokModel: "gpt2", keyTokens: toks}
	for _, t := range []gguf.TensorType{gguf.F32, gguf.F16} {
		g, err := Encode(w, EncodeOptions{Type: t})
		if err != nil {
			f.Fatal(err)
		}
		b, err := g.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := gguf.Decode(data)
		if err != nil {
			return
		}
		w, err := Decode(g)
		if err != nil {
			return
		}
		if err := w.Check(); err != nil {
			t.Fatalf("Decode returned weights that fail Check: %v", err)
		}
		if g2, err := Encode(w, EncodeOptions{Type: gguf.F32}); err == nil { // tokenizer metadata may not fit the vocabulary
			b, err := g2.Encode()
			if err != nil {
				t.Fatalf("accepted weights do not encode: %v", err)
			}
			g3, err := gguf.Decode(b)
			if err != nil {
				t.Fatalf("re-encoded weights do not decode as GGUF: %v", err)
			}
			w2, err := Decode(g3)
			if err != nil {
				t.Fatalf("re-encoded weights do not decode as llama: %v", err)
			}
			c, c2 := w.Config, w2.Config
			c.RoPEBase, c.Eps = float64(float32(c.RoPEBase)), float64(float32(c.Eps)) // the file stores float32
			c.KVHeads, c2.KVHeads = c.kvHeads(), c2.kvHeads()
			if c != c2 {
				t.Fatalf("config %+v read back as %+v", c, c2)
			}
			for n, x := range w.Tensors {
				y := w2.Tensors[n]
				if len(x) != len(y) {
					t.Fatalf("tensor %s: %d values read back as %d", n, len(x), len(y))
				}
				for i := range x {
					if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
						t.Fatalf("tensor %s value %d: %v read back as %v", n, i, x[i], y[i])
					}
				}
			}
		}
		if w.Config.kvHeads() != w.Config.Heads {
			return
		}
		lm, err := w.LM("fuzz")
		if err != nil {
			t.Fatalf("weights that pass Check do not build an LM: %v", err)
		}
		back, err := FromLM(lm)
		if err != nil {
			t.Fatalf("FromLM of the built LM: %v", err)
		}
		for n, x := range w.Tensors {
			y := back.Tensors[n]
			for i := range x {
				if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
					t.Fatalf("LM tensor %s value %d: %v, want %v", n, i, y[i], x[i])
				}
			}
		}
	})
}
