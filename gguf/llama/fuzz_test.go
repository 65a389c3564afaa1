package llama

import (
	"testing"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// FuzzDecode checks that reading untrusted GGUF bytes as a llama model never panics: it either
// fails with an error or gives weights that pass Check. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	m, err := graph.NewLM("fuzz", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 32, Ctx: 8}, tensor.Float32, 1)
	if err != nil {
		f.Fatal(err)
	}
	w, err := FromLM(m)
	if err != nil {
		f.Fatal(err)
	}
	for _, t := range []gguf.TensorType{gguf.F32, gguf.Q4_0} {
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
	})
}
