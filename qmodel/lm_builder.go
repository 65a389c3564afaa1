package qmodel

import (
	"github.com/qatgo/qatgo/quant"
)

// GroupedWeights are the weights of a Linear, LMHead or Embedding op: [N, K] (rows are output
// channels, or vocabulary entries for Embedding) with one float scale per row (or one in all) and,
// optionally, integer group scales: GroupScales[row*(K/GroupSize)+g] in [0, MaxGroupScale]
// multiplies the weights of group g (GroupSize consecutive values along K, a multiple of 8).
// Values lie in [-127,127] (int8) or [-7,7] (Int4).
type GroupedWeights struct {
	Weights
	GroupSize   int
	GroupScales []int32
}

// TokenInput adds the int32 token-id input of a language model (shape [1]: one token per row).
func (b *Builder) TokenInput(name string) TensorID {
	return b.Input(name, Int32, []int{1}, PerTensor(1, 0))
}

func (b *Builder) groupScales(name string, w GroupedWeights) (TensorID, bool) {
	if w.GroupScales == nil {
		if w.GroupSize != 0 {
			b.fail("%s: group size %d without group scales", name, w.GroupSize)
		}
		return 0, false
	}
	if len(w.Shape) != 2 || w.GroupSize <= 0 || w.Shape[1]%w.GroupSize != 0 {
		b.fail("%s: group size %d does not divide the weight shape %v", name, w.GroupSize, w.Shape)
		return 0, false
	}
	g := w.Shape[1] / w.GroupSize
	if len(w.GroupScales) != w.Shape[0]*g {
		b.fail("%s: %d group scales, want %d", name, len(w.GroupScales), w.Shape[0]*g)
		return 0, false
	}
	return b.add(Tensor{Name: name + "/group_scales", DType: Int32, Shape: []int{w.Shape[0], g},
		Quant: PerTensor(1, 0), Data: Int32Data(w.GroupScales)}), true
}

func (b *Builder) rows(name string, w GroupedWeights) int {
	if len(w.Shape) != 2 {
		b.fail("%s: weight shape %v, want [N, K]", name, w.Shape)
		return 1
	}
	return w.Shape[0]
}

// Embedding adds a token-embedding lookup of ids (TokenInput) in the table w [V, D], producing
// int8 [D] with parameters out.
func (b *Builder) Embedding(name string, ids TensorID, w GroupedWeights, out quant.Params) TensorID {
	d := 1
	if len(w.Shape) == 2 {
		d = w.Shape[1]
	} else {
		b.fail("%s: table shape %v, want [V, D]", name, w.Shape)
	}
	inputs := []int{int(ids), int(b.weights(name, w.Weights))}
	if g, ok := b.groupScales(name, w); ok {
		inputs = append(inputs, int(g))
	}
	o := b.act(name, []int{d}, out)
	b.op(Op{Kind: OpEmbedding, Name: name, Inputs: inputs, Outputs: []int{int(o)}})
	return o
}

// RMSNorm adds out = x / sqrt(mean(x^2) + eps) * gain over the D elements of in.
func (b *Builder) RMSNorm(name string, in TensorID, gain []float32, eps float32, out quant.Params) TensorID {
	shape := append([]int(nil), b.tensor(in).Shape...)
	g := b.add(Tensor{Name: name + "/gain", DType: Float32, Shape: []int{len(gain)}, Data: Float32Data(gain)})
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpRMSNorm, Name: name, Inputs: []int{int(in), int(g)}, Outputs: []int{int(o)}, LM: LMAttrs{Eps: eps}})
	return o
}

// Linear adds out = in · wᵀ (no bias) with w [N, K], int8 per-channel or int4 (optionally
// per-group) weights.
func (b *Builder) Linear(name string, in TensorID, w GroupedWeights, out quant.Params) TensorID {
	n := b.rows(name, w)
	inputs := []int{int(in), int(b.weights(name, w.Weights))}
	if g, ok := b.groupScales(name, w); ok {
		inputs = append(inputs, int(g))
	}
	o := b.act(name, []int{n}, out)
	b.op(Op{Kind: OpLinear, Name: name, Inputs: inputs, Outputs: []int{int(o)}})
	return o
}

// LMHead adds the output projection to int32 logits [V] (scale s_in*s_w[c] per entry), to be
// followed by Dequantize.
func (b *Builder) LMHead(name string, in TensorID, w GroupedWeights) TensorID {
	n := b.rows(name, w)
	sIn := b.inParams(b.tensor(in)).Scale
	inputs := []int{int(in), int(b.weights(name, w.Weights))}
	if g, ok := b.groupScales(name, w); ok {
		inputs = append(inputs, int(g))
	}
	scales := make([]float32, n)
	for c := range scales {
		s := w.Scales[0]
		if len(w.Scales) == n {
			s = w.Scales[c]
		}
		scales[c] = quant.BiasScale(sIn, s)
	}
	o := b.add(Tensor{Name: name, DType: Int32, Shape: []int{n}, Quant: PerChannel(0, scales)})
	b.op(Op{Kind: OpLMHead, Name: name, Inputs: inputs, Outputs: []int{int(o)}})
	return o
}

// RoPE adds rotary position embedding over heads of headDim elements (pairs (2p, 2p+1) turn by
// pos*theta^(-2p/headDim)) for positions below maxSeq.
func (b *Builder) RoPE(name string, in TensorID, heads, headDim, maxSeq int, theta float32, out quant.Params) TensorID {
	shape := append([]int(nil), b.tensor(in).Shape...)
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpRoPE, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)},
		LM: LMAttrs{Heads: heads, HeadDim: headDim, MaxSeq: maxSeq, Theta: theta}})
	return o
}

// AttentionOptions are the attributes of an Attention op. KVHeads 0 means Heads.
type AttentionOptions struct {
	Heads, KVHeads, HeadDim, MaxSeq int
	KCacheScales, VCacheScales      []float32 // per KV head: the int8 KV cache's symmetric scales
	// KCacheMax and VCacheMax are the largest |level| the K and V caches hold (0 means 127, the
	// int8 cache's): 7 keeps a cache to 4-bit levels [-7, 7] at the same scales. Below 127 the
	// op gets the optional cache-range input.
	KCacheMax, VCacheMax int
}

// Attention adds causal multi-head attention of q over the KV cache, which receives k and v.
func (b *Builder) Attention(name string, q, k, v TensorID, opt AttentionOptions, out quant.Params) TensorID {
	if opt.KVHeads == 0 {
		opt.KVHeads = opt.Heads
	}
	shape := append([]int(nil), b.tensor(q).Shape...)
	ks := b.add(Tensor{Name: name + "/k_cache_scales", DType: Float32, Shape: []int{len(opt.KCacheScales)}, Data: Float32Data(opt.KCacheScales)})
	vs := b.add(Tensor{Name: name + "/v_cache_scales", DType: Float32, Shape: []int{len(opt.VCacheScales)}, Data: Float32Data(opt.VCacheScales)})
	in := []int{int(q), int(k), int(v), int(ks), int(vs)}
	if km, vm := cacheMax(opt.KCacheMax), cacheMax(opt.VCacheMax); km != MaxCacheLevel || vm != MaxCacheLevel {
		in = append(in, int(b.add(Tensor{Name: name + "/cache_max", DType: Int32, Shape: []int{2},
			Quant: PerTensor(1, 0), Data: Int32Data([]int32{km, vm})})))
	}
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpAttention, Name: name, Inputs: in, Outputs: []int{int(o)},
		LM: LMAttrs{Heads: opt.Heads, KVHeads: opt.KVHeads, HeadDim: opt.HeadDim, MaxSeq: opt.MaxSeq}})
	return o
}

// SwiGLU adds out = silu(gate) * up.
func (b *Builder) SwiGLU(name string, gate, up TensorID, out quant.Params) TensorID {
	shape := append([]int(nil), b.tensor(gate).Shape...)
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpSwiGLU, Name: name, Inputs: []int{int(gate), int(up)}, Outputs: []int{int(o)}})
	return o
}

// Hadamard adds an online orthonormal Walsh-Hadamard transform H/sqrt(block) applied to each
// block of block consecutive elements.
func (b *Builder) Hadamard(name string, in TensorID, block int, out quant.Params) TensorID {
	shape := append([]int(nil), b.tensor(in).Shape...)
	o := b.act(name, shape, out)
	b.op(Op{Kind: OpHadamard, Name: name, Inputs: []int{int(in)}, Outputs: []int{int(o)}, LM: LMAttrs{Block: block}})
	return o
}

// MaxCacheLevel is the largest |level| of the runtime's int8 KV cache (symmetric, narrow range).
const MaxCacheLevel = 127

func cacheMax(m int) int32 {
	if m == 0 {
		return MaxCacheLevel
	}
	return int32(m)
}
