package graph

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func constLike(x *G.Node, v float64) *G.Node {
	if x.Dtype() == tensor.Float64 {
		return G.NewConstant(v)
	}
	return G.NewConstant(float32(v))
}

// RMSNorm normalises each row of x [N, D] by its root mean square and scales by gain [D]
// (Zhang and Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * gain. It is built from primitives
// (Gorgonia has no RMSNorm) and uses 1/Sqrt rather than Gorgonia's InverseSqrt, whose derivative
// is wrong in v0.9.18.
func RMSNorm(x, gain *G.Node, eps float64) (*G.Node, error) {
	s := x.Shape()
	if s.Dims() != 2 || gain.Shape().Dims() != 1 || gain.Shape()[0] != s[1] {
		return nil, fmt.Errorf("graph: RMSNorm needs x [N,D] and gain [D], got %v and %v", s, gain.Shape())
	}
	ms, err := G.Mean(G.Must(G.Square(x)), 1)
	if err != nil {
		return nil, err
	}
	inv, err := G.Inverse(G.Must(G.Sqrt(G.Must(G.Add(ms, constLike(x, eps))))))
	if err != nil {
		return nil, err
	}
	xn, err := ChanScale(x, inv, 0)
	if err != nil {
		return nil, err
	}
	return ChanScale(xn, gain, 1)
}

// LinearNoBias returns x W^T for x [N, In] and W [Out, In] (the graph package's weight layout).
func LinearNoBias(x, w *G.Node) (*G.Node, error) {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 2 || ws.Dims() != 2 || xs[1] != ws[1] {
		return nil, fmt.Errorf("graph: linear needs x [N,In] and W [Out,In], got %v and %v", xs, ws)
	}
	return G.Mul(x, G.Must(G.Transpose(w)))
}

// SiLU returns x * sigmoid(x) (the swish activation).
func SiLU(x *G.Node) (*G.Node, error) { return G.HadamardProd(x, G.Must(G.Sigmoid(x))) }

// SwiGLU returns the gated hidden activation of a SwiGLU MLP (Shazeer 2020, "GLU Variants
// Improve Transformer"): silu(a) * b with a = x W1^T and b = x W3^T. The MLP output is
// SwiGLU(a, b) W2^T.
func SwiGLU(a, b *G.Node) (*G.Node, error) {
	s, err := SiLU(a)
	if err != nil {
		return nil, err
	}
	return G.HadamardProd(s, b)
}

// CausalAttention is multi-head causal scaled dot-product attention (Vaswani et al. 2017) on
// projected queries, keys and values q, k, v [B*T, H*hd] (rows batch-major, then position):
// RoPE (ropeBase > 0) rotates q and k per head, scores q k^T / sqrt(hd) are masked causally and
// normalised with softmax, and the per-head outputs P v are merged back to [B*T, H*hd]. The
// caller applies the output projection.
func CausalAttention(q, k, v *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error) {
	return CausalAttentionRounded(q, k, v, batch, seq, heads, ropeBase, nil)
}

// The operands of attention that a runtime may store or multiply in a lower precision.
const (
	AttnQuery = "query" // queries after RoPE, [B*H, T, hd]
	AttnKey   = "key"   // keys after RoPE (what a KV cache stores), [B*H, T, hd]
	AttnValue = "value" // values (what a KV cache stores), [B*H, T, hd]
	AttnProbs = "probs" // softmax probabilities, [B*H, T, T]
)

// CausalAttentionRounded is CausalAttention with round, when not nil, applied to each operand
// named above before its product: e.g. half precision for llama.cpp's F16 KV cache, where the
// keys and values are stored as F16 and the queries and probabilities are converted to F16 to be
// multiplied with them.
func CausalAttentionRounded(q, k, v *G.Node, batch, seq, heads int, ropeBase float64, round func(operand string, x *G.Node) (*G.Node, error)) (*G.Node, error) {
	if !q.Shape().Eq(k.Shape()) || !q.Shape().Eq(v.Shape()) {
		return nil, fmt.Errorf("graph: attention: q %v, k %v, v %v differ", q.Shape(), k.Shape(), v.Shape())
	}
	qh, err := SplitHeads(q, batch, seq, heads, ropeBase)
	if err != nil {
		return nil, err
	}
	kh, err := SplitHeads(k, batch, seq, heads, ropeBase)
	if err != nil {
		return nil, err
	}
	vh, err := SplitHeads(v, batch, seq, heads, 0)
	if err != nil {
		return nil, err
	}
	if round != nil {
		if qh, err = round(AttnQuery, qh); err != nil {
			return nil, err
		}
		if kh, err = round(AttnKey, kh); err != nil {
			return nil, err
		}
		if vh, err = round(AttnValue, vh); err != nil {
			return nil, err
		}
	}
	hd := qh.Shape()[2]
	s, err := G.BatchedMatMul(qh, kh, false, true)
	if err != nil {
		return nil, err
	}
	p, err := CausalSoftmax(s, 1/math.Sqrt(float64(hd)))
	if err != nil {
		return nil, err
	}
	if round != nil {
		if p, err = round(AttnProbs, p); err != nil {
			return nil, err
		}
	}
	o, err := G.BatchedMatMul(p, vh)
	if err != nil {
		return nil, err
	}
	return MergeHeads(o, batch, seq, heads)
}
