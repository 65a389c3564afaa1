package graph

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
)

// LMPointKind says how the integer runtime quantizes the activation at an LMPoint.
type LMPointKind int

const (
	// PointActivation is an int8 activation of the runtime with one (scale, zero point) for the
	// whole tensor: a linear's output, a RoPE output, a residual add.
	PointActivation LMPointKind = iota
	// PointEmbedding is the embedding output: per tensor, and the runtime table is stored at
	// that scale, so a symmetric quantizer lets the table hold exactly the quantized levels.
	PointEmbedding
	// PointKVCache is a key or value entering the int8 KV cache: symmetric, one scale per head.
	// The node passed to the LMPointFunc has shape [Batch, Heads, Ctx*HeadDim] (the head is axis 1).
	// When the quantizer quantizes the KV-cache site of the same name (KVQuantizer), the site
	// takes the point's place.
	PointKVCache
)

// LMPoint is a point of an LM graph where the integer runtime quantizes an activation that no
// quantizer site covers. Name is the runtime's tensor (or op) name: "tok_emb", "blk<i>.attn.wq"
// (and wk, wv, wo, mlp.w1, w3, w2: the linear's output), "blk<i>.attn.rope_q", "blk<i>.attn.rope_k",
// "blk<i>.attn.k_cache", "blk<i>.attn.v_cache", "blk<i>.attn.res", "blk<i>.mlp.res", and with
// LMConfig.OnlineHadamard "blk<i>.mlp.swiglu" (the SwiGLU output before the Hadamard). The other
// runtime quantization points are sites: the norm outputs ("<blk>.attn.in", "<blk>.mlp.in",
// "head.in"), the attention output ("<blk>.attn.wo.in") and the SwiGLU output, or with
// OnlineHadamard the Hadamard's output ("<blk>.mlp.w2.in").
type LMPoint struct {
	Name string
	Kind LMPointKind
}

// LMPointFunc returns x fake-quantized (or observed) at the point pt; see LMOptions.Points.
type LMPointFunc func(pt LMPoint, x *G.Node) (*G.Node, error)

// LMPoints returns the LM's points in graph order (see LMPoint).
func (m *LM) LMPoints() []LMPoint {
	ps := []LMPoint{{"tok_emb", PointEmbedding}}
	for i := 0; i < m.Config.Layers; i++ {
		b := fmt.Sprintf("blk%d.", i)
		for _, n := range []string{"attn.wq", "attn.wk", "attn.wv", "attn.rope_q", "attn.rope_k"} {
			ps = append(ps, LMPoint{b + n, PointActivation})
		}
		ps = append(ps, LMPoint{b + "attn.k_cache", PointKVCache}, LMPoint{b + "attn.v_cache", PointKVCache})
		for _, n := range []string{"attn.wo", "attn.res", "mlp.w1", "mlp.w3", "mlp.swiglu", "mlp.w2", "mlp.res"} {
			if n != "mlp.swiglu" || m.Config.OnlineHadamard {
				ps = append(ps, LMPoint{b + n, PointActivation})
			}
		}
	}
	return ps
}

// point applies Opts.Points at pt (x unchanged without it) and records the result in Points.
func (n *LMNet) point(name string, kind LMPointKind, x *G.Node) (*G.Node, error) {
	if n.Opts.Points == nil {
		return x, nil
	}
	y, err := n.Opts.Points(LMPoint{Name: name, Kind: kind}, x)
	if err != nil {
		return nil, fmt.Errorf("point %s: %w", name, err)
	}
	n.Points[name] = y
	return y, nil
}

// cachePoint applies the KV-cache site (when quantized, see KVQuantizer) or else the KV-cache
// point to per-head sequences x [B*H, T, hd].
func (n *LMNet) cachePoint(name string, x *G.Node) (*G.Node, error) {
	if y, ok, err := n.kvSite(name, x); err != nil || ok {
		return y, err
	}
	s := x.Shape().Clone()
	H := n.LM.Config.Heads
	r, err := G.Reshape(x, []int{s[0] / H, H, s[1] * s[2]})
	if err != nil {
		return nil, err
	}
	y, err := n.point(name, PointKVCache, r)
	if err != nil {
		return nil, err
	}
	return G.Reshape(y, s)
}

// attentionPoints is CausalAttention with the runtime's quantization points: the RoPE outputs of
// queries and keys, and the keys and values entering the KV cache (block prefix b, e.g. "blk0.").
func (n *LMNet) attentionPoints(b string, q, k, v *G.Node) (*G.Node, error) {
	c := n.LM.Config
	B := n.Opts.Batch
	qh, err := SplitHeads(q, B, c.Ctx, c.Heads, c.RoPEBase)
	if err != nil {
		return nil, err
	}
	if qh, err = n.runtime(b+"attn.rope_q", qh, q); err != nil {
		return nil, err
	}
	kh, err := SplitHeads(k, B, c.Ctx, c.Heads, c.RoPEBase)
	if err != nil {
		return nil, err
	}
	if kh, err = n.runtime(b+"attn.rope_k", kh, k); err != nil {
		return nil, err
	}
	vh, err := SplitHeads(v, B, c.Ctx, c.Heads, 0)
	if err != nil {
		return nil, err
	}
	if qh, err = n.point(b+"attn.rope_q", PointActivation, qh); err != nil {
		return nil, err
	}
	if kh, err = n.point(b+"attn.rope_k", PointActivation, kh); err != nil {
		return nil, err
	}
	qr, kr := qh, kh // the runtime attention's inputs
	if kh, err = n.cachePoint(b+"attn.k_cache", kh); err != nil {
		return nil, err
	}
	if vh, err = n.cachePoint(b+"attn.v_cache", vh); err != nil {
		return nil, err
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
	o, err := G.BatchedMatMul(p, vh)
	if err != nil {
		return nil, err
	}
	if o, err = MergeHeads(o, B, c.Ctx, c.Heads); err != nil {
		return nil, err
	}
	return n.runtime(b+"attn", o, qr, kr, v)
}
