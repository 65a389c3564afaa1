package qat

import (
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// GGMLPreset is llama.cpp's CPU arithmetic as a quantizer for LMs of the llama architecture (a
// graph.Quantizer with every LM extension: graph.LinearQuantizer, ArithQuantizer,
// AttentionQuantizer, AttentionArithQuantizer). Every linear weight is rounded as a GGUF file of
// type Type stores it (Q8_0, Q4_0: blocks of 32 along the input dimension with an fp16 scale,
// llama.cpp's reference rounding and Q4_0's max/-8 scale rule, or with LearnScale a learned
// scale; F16: half precision), and every linear input as llama.cpp rounds it before the matmul
// (dynamic Q8_0 per block of 32 with ties to even for Q8_0/Q4_0 weights, F16 for F16 weights).
// For Q8_0 and Q4_0 the matmul accumulation, RMSNorm, SwiGLU and the attention are llama.cpp's
// float32 arithmetic too (fakequant.GGMLLinear, GGMLRMSNorm, GGMLSwiGLU, GGMLAttention).
//
// A model trained or evaluated with it and written by gguf/llama.Encode at Type computes the same
// logits in llama.cpp (KV cache of type KV, flash attention off): for Q8_0 and Q4_0 on
// llama.cpp's x86 AVX-512 CPU backend to the last bits of its float32 softmax, every rounding
// seeing llama.cpp's float32 values; for F16 up to float summation order.
//
// In one call: Prepare(lm, GGMLPreset{...}.QConfig()) gives the Prepared model a Trainer, the
// checkpoints and gguf/llama.FromPrepared use; its NetQuant computes this arithmetic. Without
// LearnScale the preset has no state, and the value itself also works as graph.LMOptions.Quant
// (in LM.Build, or in a NextTokenTask's Opts with no Prepared).
type GGMLPreset struct {
	// Type is the GGUF type of the linear weights: F32, F16, Q8_0 or Q4_0.
	Type gguf.TensorType `json:"type"`
	// KV is the type of llama.cpp's KV cache the forward models: F32 (the zero value) or F16,
	// llama.cpp's default context setting, under which the keys and values are stored in half
	// precision and the queries and attention probabilities are converted to half precision to
	// be multiplied with them.
	KV gguf.TensorType `json:"kv,omitempty"`
	// LearnScale (Q8_0 and Q4_0 only; needs the Prepared of QConfig) learns the scale of every
	// weight block of 32 with LSQ, rounded to fp16 in the forward (Spec.ScaleF16), instead of
	// llama.cpp's max rule: levels -7..7 of Q4_0's -8..7, or -127..127 for Q8_0, initialised
	// from the weights' group ranges. gguf/llama.FromPrepared materialises the rounded weights
	// and Encode with EncodeOptions.Exact writes every block exactly.
	LearnScale bool `json:"learn_scale,omitempty"`
}

// QConfig returns the QConfig that makes Prepare build this preset: QConfig.GGML set, every
// site float in the Specs (the preset rounds them) except, with LearnScale, the linear weights:
// LSQ per group of 32 along the input dimension with fp16 scales, at 4 (Q4_0) or 8 (Q8_0) bits.
func (p GGMLPreset) QConfig() QConfig {
	c := QConfig{Name: "GGML-" + p.Type.String(), Weight: Spec{Float: true}, Act: Spec{Float: true}, GGML: &p}
	if p.KV == gguf.F16 {
		c.Name += "-KV-F16"
	}
	if p.LearnScale {
		c.Name += "-LSQ"
		bits := 8
		if p.Type == gguf.Q4_0 {
			bits = 4
		}
		c.Weight = Spec{Bits: bits, Method: fakequant.LSQ, GroupSize: gguf.QK, ScaleF16: true}
	}
	return c
}

// check validates the preset's types.
func (p GGMLPreset) check() error {
	switch {
	case p.Type != gguf.F32 && p.Type != gguf.F16 && p.Type != gguf.Q8_0 && p.Type != gguf.Q4_0:
		return fmt.Errorf("qat: GGMLPreset: no preset for %v (F32, F16, Q8_0, Q4_0)", p.Type)
	case p.KV != gguf.F32 && p.KV != gguf.F16:
		return fmt.Errorf("qat: GGMLPreset: no KV cache of type %v (F32, F16)", p.KV)
	case p.LearnScale && p.Type != gguf.Q8_0 && p.Type != gguf.Q4_0:
		return fmt.Errorf("qat: GGMLPreset: LearnScale needs Q8_0 or Q4_0 weights, not %v", p.Type)
	}
	return nil
}

// QuantizeAttention implements graph.AttentionQuantizer: with KV F16 every attention operand is
// rounded to half precision (see KV); with F32 nothing is rounded.
func (p GGMLPreset) QuantizeAttention(operand string, x *G.Node) (*G.Node, error) {
	switch p.KV {
	case gguf.F32:
		return x, nil
	case gguf.F16:
		return fakequant.GGMLFakeQuant(x, fakequant.GGMLF16)
	}
	return nil, fmt.Errorf("qat: GGMLPreset: no KV cache of type %v (F32, F16)", p.KV)
}

// Quantize implements graph.Quantizer.
func (p GGMLPreset) Quantize(s graph.Site, x *G.Node) (*G.Node, error) {
	var w, a fakequant.GGMLFormat
	switch p.Type {
	case gguf.F32:
		return x, nil
	case gguf.F16:
		w, a = fakequant.GGMLF16, fakequant.GGMLF16
	case gguf.Q8_0:
		w, a = fakequant.GGMLWeightQ8_0, fakequant.GGMLActQ8_0
	case gguf.Q4_0:
		w, a = fakequant.GGMLWeightQ4_0, fakequant.GGMLActQ8_0
	default:
		return nil, fmt.Errorf("qat: GGMLPreset: no preset for %v (F32, F16, Q8_0, Q4_0)", p.Type)
	}
	if s.Kind == graph.SiteWeight {
		return fakequant.GGMLFakeQuant(x, w)
	}
	return fakequant.GGMLFakeQuant(x, a)
}

// QuantizedLinear implements graph.LinearQuantizer: for Q8_0 and Q4_0 weights the linear sums
// in llama.cpp's x86 order (fakequant.GGMLLinear), so that every later rounding of an
// activation sees the float32 value llama.cpp sees; F32 and F16 use the plain product.
func (p GGMLPreset) QuantizedLinear(x, w *G.Node, _ graph.Site) (*G.Node, error) {
	switch p.Type {
	case gguf.Q8_0:
		return fakequant.GGMLLinear(x, w, fakequant.GGMLWeightQ8_0)
	case gguf.Q4_0:
		return fakequant.GGMLLinear(x, w, fakequant.GGMLWeightQ4_0)
	}
	return graph.LinearNoBias(x, w)
}

// RuntimeRMSNorm implements graph.ArithQuantizer: for Q8_0 and Q4_0 the value is llama.cpp's
// float32 RMSNorm (fakequant.GGMLRMSNorm), so the Q8_0 rounding of the next matmul input sees
// llama.cpp's values.
func (p GGMLPreset) RuntimeRMSNorm(ref, x, gain *G.Node, eps float64) (*G.Node, error) {
	if p.Type != gguf.Q8_0 && p.Type != gguf.Q4_0 {
		return ref, nil
	}
	return fakequant.GGMLRMSNorm(ref, x, gain, eps)
}

// RuntimeSwiGLU implements graph.ArithQuantizer: for Q8_0 and Q4_0 the value is llama.cpp's
// float32 SwiGLU (fakequant.GGMLSwiGLU).
func (p GGMLPreset) RuntimeSwiGLU(ref, a, b *G.Node) (*G.Node, error) {
	if p.Type != gguf.Q8_0 && p.Type != gguf.Q4_0 {
		return ref, nil
	}
	return fakequant.GGMLSwiGLU(ref, a, b)
}

// RuntimeAttention implements graph.AttentionArithQuantizer: for Q8_0 and Q4_0 the value is
// llama.cpp's float32 attention (fakequant.GGMLAttention: ggml's RoPE angles and glibc's
// sincosf, ggml_vec_dot_f32 / tinyBLAS summation order, ggml's softmax and exp) with the KV
// cache of type KV, so that the Q8_0 rounding of the output projection's input sees llama.cpp's
// values. An F16 cache with a head size that is not a multiple of 16 keeps the float value with
// the operands rounded to half precision (QuantizeAttention).
func (p GGMLPreset) RuntimeAttention(ref, q, k, v *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error) {
	if p.Type != gguf.Q8_0 && p.Type != gguf.Q4_0 || ropeBase <= 0 {
		return ref, nil
	}
	hd := q.Shape()[1] / heads
	if p.KV == gguf.F16 && hd%16 != 0 {
		return ref, nil
	}
	return fakequant.GGMLAttention(ref, q, k, v, fakequant.GGMLAttentionConfig{
		Batch: batch, Seq: seq, Heads: heads, RoPEBase: ropeBase, KVF16: p.KV == gguf.F16})
}

// The NetQuant of a model prepared with QConfig.GGML computes the preset's arithmetic; without
// it these methods build the plain float ops (what LM.Build does for any other quantizer).
var (
	_ graph.LinearQuantizer         = (*NetQuant)(nil)
	_ graph.ArithQuantizer          = (*NetQuant)(nil)
	_ graph.AttentionQuantizer      = (*NetQuant)(nil)
	_ graph.AttentionArithQuantizer = (*NetQuant)(nil)
	_ graph.LinearQuantizer         = GGMLPreset{}
	_ graph.ArithQuantizer          = GGMLPreset{}
	_ graph.AttentionQuantizer      = GGMLPreset{}
	_ graph.AttentionArithQuantizer = GGMLPreset{}
)

// QuantizedLinear implements graph.LinearQuantizer (see QConfig.GGML).
func (nq *NetQuant) QuantizedLinear(x, w *G.Node, s graph.Site) (*G.Node, error) {
	if g := nq.p.Config.GGML; g != nil {
		return g.QuantizedLinear(x, w, s)
	}
	return graph.LinearNoBias(x, w)
}

// RuntimeRMSNorm implements graph.ArithQuantizer (see QConfig.GGML).
func (nq *NetQuant) RuntimeRMSNorm(ref, x, gain *G.Node, eps float64) (*G.Node, error) {
	if g := nq.p.Config.GGML; g != nil {
		return g.RuntimeRMSNorm(ref, x, gain, eps)
	}
	return ref, nil
}

// RuntimeSwiGLU implements graph.ArithQuantizer (see QConfig.GGML).
func (nq *NetQuant) RuntimeSwiGLU(ref, a, b *G.Node) (*G.Node, error) {
	if g := nq.p.Config.GGML; g != nil {
		return g.RuntimeSwiGLU(ref, a, b)
	}
	return ref, nil
}

// QuantizeAttention implements graph.AttentionQuantizer (see QConfig.GGML).
func (nq *NetQuant) QuantizeAttention(operand string, x *G.Node) (*G.Node, error) {
	if g := nq.p.Config.GGML; g != nil {
		return g.QuantizeAttention(operand, x)
	}
	return x, nil
}

// RuntimeAttention implements graph.AttentionArithQuantizer (see QConfig.GGML).
func (nq *NetQuant) RuntimeAttention(ref, q, k, v *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error) {
	if g := nq.p.Config.GGML; g != nil {
		return g.RuntimeAttention(ref, q, k, v, batch, seq, heads, ropeBase)
	}
	return ref, nil
}
