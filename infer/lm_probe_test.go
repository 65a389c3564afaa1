package infer

import (
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
)

// TestActivationProbe: Activation returns the int8 rows of the last call (the embedding rows equal
// a fresh single-token decode of the same token), and rejects unknown and non-int8 tensors.
func TestActivationProbe(t *testing.T) {
	m, err := lmref.RandomLM(lmref.Tiny(8, 0), 3)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := LoadLM(m)
	if err != nil {
		t.Fatal(err)
	}
	s := lm.NewSession()
	if _, err := s.Prefill([]int{5, 9, 200}); err != nil {
		t.Fatal(err)
	}
	emb, err := s.Activation("tok_emb")
	if err != nil {
		t.Fatal(err)
	}
	if len(emb) != 3*64 {
		t.Fatalf("%d values, want 3 rows of 64", len(emb))
	}
	row := append([]int8(nil), emb[2*64:]...)
	s2 := lm.NewSession()
	if _, err := s2.Decode(200); err != nil {
		t.Fatal(err)
	}
	one, _ := s2.Activation("tok_emb")
	if len(one) != 64 {
		t.Fatalf("decode: %d values", len(one))
	}
	for i := range one {
		if one[i] != row[i] {
			t.Fatalf("embedding of token 200 differs at %d: %d vs %d", i, one[i], row[i])
		}
	}
	for _, name := range []string{"nope", "tokens", "head", "logits"} {
		if _, err := s.Activation(name); err == nil {
			t.Errorf("Activation(%q) accepted", name)
		}
	}
}
