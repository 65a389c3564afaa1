package qat

import (
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
)

// LMRecipe is the usual quantization recipe of a decoder-only LM (llama.cpp / SmoothQuant style):
// symmetric narrow-range weights, per group of Group inputs below 8 bits (per output channel at 8
// bits or with Group 0), the output projection ("head") at HeadBits, and asymmetric signed
// per-tensor activations at the input of every linear.
type LMRecipe struct {
	WBits, ABits int
	Group        int // weight group size along the input dimension below 8 bits; 0: per output channel
	HeadBits     int // bits of the head weight; 0 or less than WBits means WBits
	// LearnW learns weight scales with LSQ (QAT); otherwise min/max of the current weights.
	LearnW bool
	// LearnA learns activation scales and offsets with LSQ+ (QAT); otherwise an observer:
	// running min/max (ActMomentum 0) or an EMA with factor ActMomentum.
	LearnA      bool
	ActMomentum float64
	// KVBits > 0 fake-quantizes the keys and values entering the KV cache at that many bits
	// (QConfig.KV: symmetric, per head; 8 or 4 usually), learned like the activations (LSQ with
	// LearnA, else an observer with ActMomentum). 0: the KV cache is not modelled in training.
	KVBits int
}

// Bits names the recipe's bit widths, e.g. "W4A8 g32" or "W8A8 KV4".
func (r LMRecipe) Bits() string {
	b := fmt.Sprintf("W%dA%d", r.WBits, r.ABits)
	if r.Group > 0 && r.WBits < 8 {
		b += fmt.Sprintf(" g%d", r.Group)
	}
	if r.KVBits > 0 {
		b += fmt.Sprintf(" KV%d", r.KVBits)
	}
	return b
}

func (r LMRecipe) weight(bits int) Spec {
	s := Spec{Bits: bits, Method: fakequant.Observed, Momentum: 1}
	if bits < 8 {
		s.GroupSize = r.Group
	}
	if r.LearnW {
		s.Method, s.Momentum = fakequant.LSQ, 0
	}
	return s
}

// QConfig returns the QConfig of the recipe for an LM built by graph.NewLM (the head override is
// keyed by its linear "head").
func (r LMRecipe) QConfig() QConfig {
	a := Spec{Bits: r.ABits, Method: fakequant.Observed, Momentum: r.ActMomentum}
	if r.LearnA {
		a = Spec{Bits: r.ABits, Method: fakequant.LSQ, LearnOffset: true}
	}
	hb := max(r.HeadBits, r.WBits)
	c := QConfig{Name: "LM-" + r.Bits(), Weight: r.weight(r.WBits), Act: a}
	if hb != r.WBits {
		h := r.weight(hb)
		c = c.With("head", Override{Weight: &h})
	}
	if r.KVBits > 0 {
		kv := Spec{Bits: r.KVBits, Method: fakequant.Observed, Momentum: r.ActMomentum}
		if r.LearnA {
			kv = Spec{Bits: r.KVBits, Method: fakequant.LSQ}
		}
		c.KV = &kv
	}
	return c
}
