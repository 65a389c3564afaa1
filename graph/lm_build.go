package graph

import (
	"fmt"
	"hash/fnv"

	"github.com/qatgo/qatgo/fakequant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LMOptions select how LM.Build lowers the model to a Gorgonia graph.
type LMOptions struct {
	Batch int // sequences per batch; the graph processes Batch*Ctx tokens
	// Quant, when set, is called at every site of LM.Sites: the input activation of each linear
	// (after the rotation, when Rotate is set) and each linear weight (rotated likewise).
	Quant Quantizer
	// Rotate, when set, applies an orthogonal rotation R to the input of every linear and the same
	// rotation to the input dimension of its weights: (x R)(W R)^T = x W^T, so the float model is
	// unchanged while outliers of x are spread over all channels before quantization (QuaRot,
	// Ashkboos et al. 2024, online rotations). For a randomised Hadamard rotation pass a
	// function returning fakequant.Hadamard(x, seed).Out (power-of-two widths Dim and Hidden).
	Rotate RotateFunc
	// RotateSeed selects the rotations: site s uses seed RotateSeed ^ fnv64a(s).
	RotateSeed uint64
	// Rotations, when set, multiplies the offline rotations of a rotated LM (QuaRot / SpinQuant:
	// residual R1, per-head R2, online Hadamard before w2) into the weights inside the graph; see
	// LMRotations and LM.FoldRotations. It excludes Rotate.
	Rotations *LMRotations
	// Points, when set, is called at every LMPoint (LM.LMPoints): where the integer runtime
	// quantizes an activation that no quantizer site covers (embedding output, linear outputs,
	// RoPE outputs, KV cache, residual adds). Package export uses it to calibrate those points
	// and to build the fake-quant graph that models the runtime at every quantization point.
	Points LMPointFunc
	// Runtime, when set (with Points), is called with the float value of every op of the integer
	// runtime, before the point or site that quantizes its output, and the graph continues with
	// the node it returns: package export substitutes the runtime's integer arithmetic for the
	// float ops there (RuntimeSubstitute), so that its fake-quant graph computes what the runtime
	// computes. The ops are the runtime's, by name (see LMRuntimeFunc): the embedding (input: the
	// token ids), each RMSNorm (the normalised activation), each linear and the head (the
	// quantized input), RoPE (the linear's output), attention (the queries and keys after RoPE,
	// per head [Batch*Heads, Ctx, HeadDim], and the values [Batch*Ctx, Dim]), each residual add
	// (both terms), SwiGLU (gate and up) and the online Hadamard (its input).
	Runtime LMRuntimeFunc
}

// LinearQuantizer is an optional extension of Quantizer for LMs. When LMOptions.Quant implements
// it, LM.Build computes each linear as QuantizedLinear(xq, wq, weight) from the quantized input xq
// [N, In] and quantized weight wq [Out, In] instead of xq wq^T, so that a quantizer can also
// reproduce a target runtime's accumulation order (gguf/llama.Preset: llama.cpp's). It must
// return xq wq^T up to float rounding, with that gradient.
type LinearQuantizer interface {
	QuantizedLinear(x, w *G.Node, weight Site) (*G.Node, error)
}

// ArithQuantizer is an optional extension of Quantizer for LMs. When LMOptions.Quant implements
// it, LM.Build hands the float result ref of every RMSNorm and SwiGLU, with that op's inputs, to
// it and uses the node it returns, so that a quantizer can substitute a target runtime's float32
// arithmetic for the values (gguf/llama.Preset: llama.cpp's) while keeping ref's gradient.
type ArithQuantizer interface {
	RuntimeRMSNorm(ref, x, gain *G.Node, eps float64) (*G.Node, error)
	RuntimeSwiGLU(ref, a, b *G.Node) (*G.Node, error)
}

// AttentionArithQuantizer is an optional extension of Quantizer for LMs. When LMOptions.Quant
// implements it, LM.Build hands the float output ref of every causal attention (before the
// output projection, [Batch*Ctx, Heads*hd]) with its inputs, the projected queries, keys and
// values q, k, v of that shape, to RuntimeAttention and uses the node it returns, so that a
// quantizer can substitute a target runtime's float32 attention arithmetic (RoPE, scores,
// softmax, the product with V) for the values while keeping ref's gradient (gguf/llama.Preset:
// llama.cpp's).
type AttentionArithQuantizer interface {
	RuntimeAttention(ref, q, k, v *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error)
}

// AttentionQuantizer is an optional extension of Quantizer for LMs. When LMOptions.Quant
// implements it, LM.Build rounds the attention operands with it (CausalAttentionRounded; operand
// is AttnQuery, AttnKey, AttnValue or AttnProbs): e.g. a KV cache kept in half precision.
type AttentionQuantizer interface {
	QuantizeAttention(operand string, x *G.Node) (*G.Node, error)
}

// RotateFunc returns x rotated along its last axis by an orthogonal matrix R that depends only
// on seed and the axis length: y = x R. It must be differentiable. Build calls it for each
// activation site first and then, with the same seed, for each weight reading that site, so a
// function may create a learnable R on the first call and reuse it for the weights.
type RotateFunc func(x *G.Node, seed uint64) (*G.Node, error)

// LMNet is an LM lowered to a Gorgonia graph for a fixed batch: token ids in, logits and the
// mean next-token cross-entropy out.
type LMNet struct {
	LM   *LM       // the model the graph was built from
	Opts LMOptions // the options it was built with
	// rotated holds the weights as Opts.Rotations rotates them (by parameter name); ones is the
	// gain of the norms whose gains the residual rotation folds into the linears.
	rotated map[string]*G.Node
	ones    *G.Node
	G       *G.ExprGraph // the graph
	// IDs [Batch*Ctx] holds token ids as floats (bound to IDVal); Target [Batch*Ctx, Vocab] the
	// one-hot next tokens (bound to TargetVal). SetBatch fills both.
	IDs, Target      *G.Node
	IDVal, TargetVal *tensor.Dense
	Logits, Loss     *G.Node            // [Batch*Ctx, Vocab] and the scalar mean cross-entropy
	Params           map[string]*G.Node // parameter nodes by name, bound to Param.Value
	Acts             map[string]*G.Node // input of the linears at each activation site (after an online Hadamard), before Rotate and quantization
	Sites            map[string]*G.Node // quantizer output node by site name (with Quant)
	Points           map[string]*G.Node // output of Opts.Points by point name (with Points)
	nRows            int
}

// Build lowers the model to a new graph.
func (m *LM) Build(o LMOptions) (*LMNet, error) {
	c := m.Config
	if o.Batch < 1 {
		return nil, fmt.Errorf("graph: LM batch size %d (want >= 1)", o.Batch)
	}
	N := o.Batch * c.Ctx
	n := &LMNet{LM: m, Opts: o, G: G.NewGraph(), Params: map[string]*G.Node{}, Acts: map[string]*G.Node{},
		Sites: map[string]*G.Node{}, Points: map[string]*G.Node{}, nRows: N}
	n.IDVal = tensor.New(tensor.Of(m.Dtype), tensor.WithShape(N))
	n.IDs = G.NewVector(n.G, m.Dtype, G.WithShape(N), G.WithName(m.Name+"/ids"), G.WithValue(n.IDVal))
	n.TargetVal = tensor.New(tensor.Of(m.Dtype), tensor.WithShape(N, c.Vocab))
	n.Target = G.NewMatrix(n.G, m.Dtype, G.WithShape(N, c.Vocab), G.WithName(m.Name+"/target"), G.WithValue(n.TargetVal))
	for _, p := range m.params {
		s := p.Value.Shape()
		n.Params[p.Name] = G.NewTensor(n.G, m.Dtype, s.Dims(), G.WithShape(s...), G.WithName(m.Name+"/"+p.Name), G.WithValue(p.Value))
	}
	if o.Rotations != nil && o.Rotate != nil {
		return nil, fmt.Errorf("graph: LM options: Rotations and Rotate exclude each other")
	}
	if err := n.rotateWeights(); err != nil {
		return nil, fmt.Errorf("graph: building LM %q: %w", m.Name, err)
	}
	sites := map[string]Site{}
	for _, s := range m.Sites() {
		sites[s.Name] = s
	}
	if err := n.build(sites); err != nil {
		return nil, fmt.Errorf("graph: building LM %q: %w", m.Name, err)
	}
	return n, nil
}

func (n *LMNet) build(sites map[string]Site) error {
	c := n.LM.Config
	h, err := Embedding(n.weight("tok_emb.weight"), n.IDs)
	if err != nil {
		return err
	}
	if h, err = n.runtime("tok_emb", h, n.IDs); err != nil {
		return err
	}
	if h, err = n.point("tok_emb", PointEmbedding, h); err != nil {
		return err
	}
	arith, _ := n.Opts.Quant.(ArithQuantizer)
	norm := func(x *G.Node, layer string) (*G.Node, error) {
		g := n.normGain(layer)
		y, err := RMSNorm(x, g, c.Eps)
		if err == nil && arith != nil {
			y, err = arith.RuntimeRMSNorm(y, x, g, c.Eps)
		}
		if err != nil {
			return nil, err
		}
		return n.runtime(layer, y, x)
	}
	for i := 0; i < c.Layers; i++ {
		b := fmt.Sprintf("blk%d", i)
		a, err := norm(h, b+".attn_norm")
		if err != nil {
			return err
		}
		qkv, err := n.linears(sites, a, b+".attn.wq", b+".attn.wk", b+".attn.wv")
		if err != nil {
			return err
		}
		var att *G.Node
		if n.Opts.Points != nil {
			att, err = n.attentionPoints(b+".", qkv[0], qkv[1], qkv[2])
		} else {
			var round func(string, *G.Node) (*G.Node, error)
			if aq, ok := n.Opts.Quant.(AttentionQuantizer); ok {
				round = aq.QuantizeAttention
			}
			round = n.kvRound(b+".", round)
			att, err = CausalAttentionRounded(qkv[0], qkv[1], qkv[2], n.Opts.Batch, c.Ctx, c.Heads, c.RoPEBase, round)
			if aa, ok := n.Opts.Quant.(AttentionArithQuantizer); ok && err == nil {
				att, err = aa.RuntimeAttention(att, qkv[0], qkv[1], qkv[2], n.Opts.Batch, c.Ctx, c.Heads, c.RoPEBase)
			}
		}
		if err != nil {
			return err
		}
		o, err := n.linears(sites, att, b+".attn.wo")
		if err != nil {
			return err
		}
		if h, err = n.residual(b+".attn.res", h, o[0]); err != nil {
			return err
		}
		x, err := norm(h, b+".mlp_norm")
		if err != nil {
			return err
		}
		a13, err := n.linears(sites, x, b+".mlp.w1", b+".mlp.w3")
		if err != nil {
			return err
		}
		u, err := SwiGLU(a13[0], a13[1])
		if err != nil {
			return err
		}
		if arith != nil {
			if u, err = arith.RuntimeSwiGLU(u, a13[0], a13[1]); err != nil {
				return err
			}
		}
		if u, err = n.runtime(b+".mlp.swiglu", u, a13[0], a13[1]); err != nil {
			return err
		}
		d, err := n.linears(sites, u, b+".mlp.w2")
		if err != nil {
			return err
		}
		if h, err = n.residual(b+".mlp.res", h, d[0]); err != nil {
			return err
		}
	}
	x, err := norm(h, "norm")
	if err != nil {
		return err
	}
	logits, err := n.linears(sites, x, "head")
	if err != nil {
		return err
	}
	n.Logits = logits[0]
	n.Loss, err = CrossEntropy(n.Logits, n.Target)
	return err
}

func (n *LMNet) siteSeed(site string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(site))
	return n.Opts.RotateSeed ^ h.Sum64()
}

// linears applies the named linears (which share one input site) to x, inserting rotations and
// quantizers at the input and weight sites.
func (n *LMNet) linears(sites map[string]Site, x *G.Node, names ...string) ([]*G.Node, error) {
	site := n.LM.linears[n.linearIndex(names[0])].Input
	var err error
	if n.onlineHadamard(site) {
		// the runtime quantizes the SwiGLU output before its Hadamard op
		blk := site[:len(site)-len(".w2.in")]
		if x, err = n.point(blk+".swiglu", PointActivation, x); err != nil {
			return nil, err
		}
		in := x
		if x, err = fakequant.WalshHadamard(x); err != nil {
			return nil, fmt.Errorf("online Hadamard at %s: %w", site, err)
		}
		if x, err = n.runtime(blk+".hadamard", x, in); err != nil {
			return nil, err
		}
	}
	n.Acts[site] = x
	if n.Opts.Rotate != nil {
		if x, err = n.Opts.Rotate(x, n.siteSeed(site)); err != nil {
			return nil, fmt.Errorf("rotating %s: %w", site, err)
		}
	}
	if n.Opts.Quant != nil {
		if x, err = n.Opts.Quant.Quantize(sites[site], x); err != nil {
			return nil, err
		}
		n.Sites[site] = x
	}
	outs := make([]*G.Node, len(names))
	for i, name := range names {
		w := n.weight(name + ".weight")
		if n.Opts.Rotate != nil {
			if w, err = n.Opts.Rotate(w, n.siteSeed(site)); err != nil {
				return nil, fmt.Errorf("rotating %s.weight: %w", name, err)
			}
		}
		if n.Opts.Quant != nil {
			ws := name + ".weight"
			if w, err = n.Opts.Quant.Quantize(sites[ws], w); err != nil {
				return nil, err
			}
			n.Sites[ws] = w
		}
		if lq, ok := n.Opts.Quant.(LinearQuantizer); ok {
			outs[i], err = lq.QuantizedLinear(x, w, sites[name+".weight"])
		} else {
			outs[i], err = LinearNoBias(x, w)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if outs[i], err = n.runtime(name, outs[i], x); err != nil {
			return nil, err
		}
		if name != "head" { // the head's int32 logits are not requantized
			if outs[i], err = n.point(name, PointActivation, outs[i]); err != nil {
				return nil, err
			}
		}
	}
	return outs, nil
}

// residual is the residual add h + d of the runtime's Add op name, with its output point.
func (n *LMNet) residual(name string, h, d *G.Node) (*G.Node, error) {
	s, err := G.Add(h, d)
	if err != nil {
		return nil, err
	}
	if s, err = n.runtime(name, s, h, d); err != nil {
		return nil, err
	}
	return n.point(name, PointActivation, s)
}

func (n *LMNet) linearIndex(name string) int {
	for i, l := range n.LM.linears {
		if l.Name == name {
			return i
		}
	}
	panic("graph: unknown LM linear " + name) // programmer error: names come from build
}

// SetBatch writes Batch*Ctx token ids and their next-token targets (row-major [Batch][Ctx]) into
// the input tensors. It returns an error for a wrong length or an id outside [0, Vocab).
func (n *LMNet) SetBatch(ids, targets []int) error {
	V := n.LM.Config.Vocab
	if len(ids) != n.nRows || len(targets) != n.nRows {
		return fmt.Errorf("graph: LM batch has %d ids and %d targets, want %d", len(ids), len(targets), n.nRows)
	}
	for i := range ids {
		if ids[i] < 0 || ids[i] >= V || targets[i] < 0 || targets[i] >= V {
			return fmt.Errorf("graph: token %d: id %d or target %d outside [0, %d)", i, ids[i], targets[i], V)
		}
	}
	switch d := n.IDVal.Data().(type) {
	case []float32:
		t := n.TargetVal.Data().([]float32)
		clear(t)
		for i := range ids {
			d[i] = float32(ids[i])
			t[i*V+targets[i]] = 1
		}
	case []float64:
		t := n.TargetVal.Data().([]float64)
		clear(t)
		for i := range ids {
			d[i] = float64(ids[i])
			t[i*V+targets[i]] = 1
		}
	}
	return nil
}

// ParamNodes returns the parameter nodes in the LM's parameter order (to pass to G.Grad).
func (n *LMNet) ParamNodes() G.Nodes {
	ns := make(G.Nodes, len(n.LM.params))
	for i, p := range n.LM.params {
		ns[i] = n.Params[p.Name]
	}
	return ns
}
