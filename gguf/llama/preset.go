package llama

import (
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// Preset is a graph.Quantizer whose fake quantization is llama.cpp's CPU arithmetic for weights
// of type Type: every linear weight rounded as the GGUF file will store it (Q8_0, Q4_0: blocks of
// 32 along the input dimension, fp16 scale, llama.cpp's reference rounding; F16: half
// precision), and every linear input rounded as llama.cpp rounds it before the matmul (dynamic
// Q8_0 per block of 32 with ties to even for Q8_0/Q4_0 weights, F16 for F16 weights). A model
// trained or evaluated with Preset{T} and written by Encode with Type T computes the same
// logits in llama.cpp (KV cache of type KV, flash attention off): for Q8_0 and Q4_0 on llama.cpp's
// x86 AVX-512 CPU backend to the last bits of its float32 softmax, every rounding seeing
// llama.cpp's float32 values; for F16 up to float summation order. Use it
// as graph.LMOptions.Quant: in LM.Build, or in a qat.NextTokenTask's Opts with no Prepared (see
// ExamplePreset). Its rounding has no state: nothing to calibrate, checkpoint or export.
type Preset struct {
	Type gguf.TensorType
	// KV is the type of llama.cpp's KV cache the forward models: F32 (the zero value) or F16,
	// llama.cpp's default context setting, under which the keys and values are stored in half
	// precision and the queries and attention probabilities are converted to half precision to
	// be multiplied with them.
	KV gguf.TensorType
}

// QuantizeAttention implements graph.AttentionQuantizer: with KV F16 every attention operand is
// rounded to half precision (see KV); with F32 nothing is rounded.
func (p Preset) QuantizeAttention(operand string, x *G.Node) (*G.Node, error) {
	switch p.KV {
	case gguf.F32:
		return x, nil
	case gguf.F16:
		return fakequant.GGMLFakeQuant(x, fakequant.GGMLF16)
	}
	return nil, fmt.Errorf("llama: no KV cache of type %v (F32, F16)", p.KV)
}

// Quantize implements graph.Quantizer.
func (p Preset) Quantize(s graph.Site, x *G.Node) (*G.Node, error) {
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
		return nil, fmt.Errorf("llama: no preset for %v (F32, F16, Q8_0, Q4_0)", p.Type)
	}
	if s.Kind == graph.SiteWeight {
		return fakequant.GGMLFakeQuant(x, w)
	}
	return fakequant.GGMLFakeQuant(x, a)
}

// QuantizedLinear implements graph.LinearQuantizer: for Q8_0 and Q4_0 weights the linear sums
// in llama.cpp's x86 order (fakequant.GGMLLinear), so that every later rounding of an
// activation sees the float32 value llama.cpp sees; F32 and F16 use the plain product.
func (p Preset) QuantizedLinear(x, w *G.Node, _ graph.Site) (*G.Node, error) {
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
func (p Preset) RuntimeRMSNorm(ref, x, gain *G.Node, eps float64) (*G.Node, error) {
	if p.Type != gguf.Q8_0 && p.Type != gguf.Q4_0 {
		return ref, nil
	}
	return fakequant.GGMLRMSNorm(ref, x, gain, eps)
}

// RuntimeSwiGLU implements graph.ArithQuantizer: for Q8_0 and Q4_0 the value is llama.cpp's
// float32 SwiGLU (fakequant.GGMLSwiGLU).
func (p Preset) RuntimeSwiGLU(ref, a, b *G.Node) (*G.Node, error) {
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
func (p Preset) RuntimeAttention(ref, q, k, v *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error) {
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
