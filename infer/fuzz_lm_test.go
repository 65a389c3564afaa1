package infer

import (
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qmodel"
)

// FuzzLoadRunLM is FuzzLoadRun for language models: any file that decodes and loads as an LM
// within the work budget fuzzMaxWork (which counts a full context of attention per token and the
// RoPE tables built at load) prefills a few tokens and decodes one without a panic or an error.
// Valid but expensive models are not skipped here: the runtime's own budget refuses them.
func FuzzLoadRunLM(f *testing.F) {
	for _, c := range []lmref.Config{
		{Vocab: 16, Dim: 16, Layers: 1, Heads: 2, Hidden: 32, Ctx: 8, Bits: 8},
		{Vocab: 16, Dim: 32, Layers: 1, Heads: 4, KVHeads: 2, Hidden: 32, Ctx: 8, Bits: 4, Group: 16, Hadamard: true},
	} {
		m, err := lmref.RandomLM(c, 1)
		if err != nil {
			f.Fatal(err)
		}
		enc, err := qmodel.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = append([]byte(nil), data...)
		repairCRCs(data)
		m, err := qmodel.Decode(data)
		if err != nil || !m.IsLM() {
			return
		}
		lm, err := LoadLMWith(m, LoadOptions{MaxWork: fuzzMaxWork})
		if err != nil {
			return
		}
		s := lm.NewSessionWith(LMSessionOptions{PrefillRows: 2})
		toks := []int{0, lm.Vocab() - 1, 0}[:min(3, lm.ContextLength())]
		if _, err := s.Prefill(toks); err != nil {
			t.Fatalf("a loaded LM failed to prefill %v: %v", toks, err)
		}
		if s.Room() > 0 {
			if _, err := s.Decode(lm.Vocab() / 2); err != nil {
				t.Fatalf("a loaded LM failed to decode: %v", err)
			}
		}
	})
}
