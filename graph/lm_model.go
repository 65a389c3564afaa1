package graph

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// Language-model layer kinds. They name the layers of an [LM] and appear in its spec.
const (
	KindEmbedding Kind = "embedding"
	KindRMSNorm   Kind = "rmsnorm"
	KindAttention Kind = "attention" // causal multi-head self-attention with RoPE
	KindSwiGLU    Kind = "swiglu"
)

// RoleGain is the role of an RMSNorm gain vector [D].
const RoleGain Role = "gain"

// LMConfig is the shape of a Llama-style decoder-only language model.
type LMConfig struct {
	Vocab    int     // vocabulary size (256 for bytes)
	Dim      int     // residual width D
	Layers   int     // number of transformer blocks
	Heads    int     // attention heads; D/Heads is the head dimension, which must be even (RoPE)
	Hidden   int     // SwiGLU hidden width; 0 means 2*Dim
	Ctx      int     // context length: every batch is Batch sequences of Ctx tokens
	RoPEBase float64 // rotary embedding base theta; 0 means 10000
	Eps      float64 // RMSNorm epsilon; 0 means 1e-5
	// OnlineHadamard: the input of every block's w2 is rotated online by the orthonormal
	// Walsh-Hadamard transform H/sqrt(Hidden) (Hidden a power of two), and w2's weight holds
	// W2 H/sqrt(Hidden). LM.FoldRotations sets it; an integer runtime runs the transform
	// (qmodel's Hadamard op) between the SwiGLU product and w2.
	OnlineHadamard bool
}

func (c *LMConfig) defaults() error {
	if c.Hidden == 0 {
		c.Hidden = 2 * c.Dim
	}
	if c.RoPEBase == 0 {
		c.RoPEBase = 10000
	}
	if c.Eps == 0 {
		c.Eps = 1e-5
	}
	switch {
	case c.Vocab < 1 || c.Dim < 1 || c.Layers < 0 || c.Heads < 1 || c.Hidden < 1 || c.Ctx < 1:
		return fmt.Errorf("graph: LM config %+v: sizes must be positive", *c)
	case c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0:
		return fmt.Errorf("graph: LM config: Dim %d must split into %d heads of even size", c.Dim, c.Heads)
	case c.OnlineHadamard && c.Hidden&(c.Hidden-1) != 0:
		return fmt.Errorf("graph: LM config: OnlineHadamard needs a power-of-two Hidden, got %d", c.Hidden)
	case !(c.RoPEBase > 0) || !(c.Eps > 0):
		return fmt.Errorf("graph: LM config: RoPEBase %v and Eps %v must be positive", c.RoPEBase, c.Eps)
	}
	return nil
}

// LMLinear describes one linear layer of an LM (y = x W^T, W [Out, In], no bias) and the
// activation site that feeds it. Linears that read the same activation (wq, wk, wv; w1, w3)
// share one Input site.
type LMLinear struct {
	Name    string // e.g. "blk0.attn.wq"; its weight is "<Name>.weight"
	Input   string // activation site name, e.g. "blk0.attn.in"
	In, Out int    // input and output features
}

// LM is a Llama-style decoder-only transformer (Touvron et al. 2023): token embedding, Layers
// pre-norm blocks h += Attn(RMSNorm(h)); h += SwiGLU-MLP(RMSNorm(h)), a final RMSNorm and an
// untied output projection to Vocab logits. Attention is causal multi-head self-attention with
// RoPE on queries and keys. No linear has a bias.
//
// Parameters (Param.Name, shape):
//
//	tok_emb.weight          [Vocab, Dim]
//	blk<i>.attn_norm.gain   [Dim]
//	blk<i>.attn.wq|wk|wv|wo.weight [Dim, Dim]
//	blk<i>.mlp_norm.gain    [Dim]
//	blk<i>.mlp.w1|w3.weight [Hidden, Dim]
//	blk<i>.mlp.w2.weight    [Dim, Hidden]
//	norm.gain               [Dim]
//	head.weight             [Vocab, Dim]
//
// Quantizer sites (see Sites) sit where an integer runtime quantizes: the input activation of
// every linear and every linear weight. The embedding, norms, attention score/probability
// matmuls and residual adds stay in float (as in llama.cpp's and SmoothQuant's W8A8 LLM
// pipelines for the products of two activations).
type LM struct {
	Name   string       // the name given to NewLM
	Config LMConfig     // the hyper-parameters it was created with
	Dtype  tensor.Dtype // float32 or float64

	params  []*Param
	byName  map[string]*Param
	linears []LMLinear
}

// NewLM creates an LM with parameters drawn from a PCG generator seeded with seed: embedding
// N(0, 1) (every block reads it through an RMSNorm), linear weights N(0, 1/In) with the residual output projections (wo,
// w2) further scaled by 1/sqrt(2*Layers) (GPT-2), norm gains 1.
func NewLM(name string, c LMConfig, dtype tensor.Dtype, seed uint64) (*LM, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if dtype != tensor.Float64 {
		dtype = tensor.Float32
	}
	m := &LM{Name: name, Config: c, Dtype: dtype, byName: map[string]*Param{}}
	rng := rand.New(rand.NewPCG(seed, 0x2545f4914f6cdd1d))
	normal := func(std float64) func() float64 { return func() float64 { return rng.NormFloat64() * std } }
	D, Hd := c.Dim, c.Hidden
	resid := 1 / math.Sqrt(2*float64(max(c.Layers, 1)))
	m.newParam("tok_emb", RoleWeight, []int{c.Vocab, D}, normal(1))
	for i := 0; i < c.Layers; i++ {
		b := fmt.Sprintf("blk%d", i)
		m.newParam(b+".attn_norm", RoleGain, []int{D}, constInit(1))
		for _, w := range []string{"wq", "wk", "wv", "wo"} {
			std := 1 / math.Sqrt(float64(D))
			in := b + ".attn.in"
			if w == "wo" {
				std *= resid
				in = b + ".attn.wo.in"
			}
			m.linear(b+".attn."+w, in, D, D, normal(std))
		}
		m.newParam(b+".mlp_norm", RoleGain, []int{D}, constInit(1))
		m.linear(b+".mlp.w1", b+".mlp.in", D, Hd, normal(1/math.Sqrt(float64(D))))
		m.linear(b+".mlp.w3", b+".mlp.in", D, Hd, normal(1/math.Sqrt(float64(D))))
		m.linear(b+".mlp.w2", b+".mlp.w2.in", Hd, D, normal(resid/math.Sqrt(float64(Hd))))
	}
	m.newParam("norm", RoleGain, []int{D}, constInit(1))
	m.linear("head", "head.in", D, c.Vocab, normal(1/math.Sqrt(float64(D))))
	return m, nil
}

func (m *LM) newParam(layer string, r Role, shape []int, init func() float64) *Param {
	p := &Param{Name: layer + "." + string(r), Layer: layer, Role: r, Trainable: true,
		Value: initTensor(m.Dtype, shape, init)}
	m.params = append(m.params, p)
	m.byName[p.Name] = p
	return p
}

func (m *LM) linear(name, input string, in, out int, init func() float64) {
	m.newParam(name, RoleWeight, []int{out, in}, init)
	m.linears = append(m.linears, LMLinear{Name: name, Input: input, In: in, Out: out})
}

// Params returns the parameters in creation order (all trainable).
func (m *LM) Params() []*Param { return m.params }

// Param returns the parameter with the given name, or nil.
func (m *LM) Param(name string) *Param { return m.byName[name] }

// Linears returns the linear layers in graph order.
func (m *LM) Linears() []LMLinear { return m.linears }

// NumParams returns the number of scalar parameters.
func (m *LM) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += p.Value.Shape().TotalSize()
	}
	return n
}

// Sites lists the quantizer sites in graph order: for each activation site (the input of one or
// more linears; Kind SiteActivation, Axis -1, Shape [In]) the site itself followed by the weight
// sites "<linear>.weight" of the linears reading it (Kind SiteWeight, Axis 0, Shape [Out, In]).
// Group is the name of the (first) linear reading the site.
func (m *LM) Sites() []Site {
	var s []Site
	for i, l := range m.linears {
		if i == 0 || m.linears[i-1].Input != l.Input {
			s = append(s, Site{Name: l.Input, Kind: SiteActivation, Group: l.Name, Axis: -1, Shape: []int{l.In}})
		}
		s = append(s, Site{Name: l.Name + ".weight", Kind: SiteWeight, Group: l.Name, Axis: 0, Shape: []int{l.Out, l.In}})
	}
	return s
}

// Groups returns one fusion group per linear (Kind KindLinear, Op the linear's name), in graph
// order: the ops that own the LM's quantizer sites. The other layers (embedding, norms, attention
// products, residual adds) stay float and form no group.
func (m *LM) Groups() []Group {
	gs := make([]Group, len(m.linears))
	for i, l := range m.linears {
		gs[i] = Group{Op: l.Name, Kind: KindLinear, Layers: []string{l.Name}, Out: l.Name}
	}
	return gs
}

// HasLayer reports whether name is a layer of the LM: a linear ("blk0.attn.wq", "head"), a norm
// ("blk0.attn_norm", "norm") or the embedding ("tok_emb").
func (m *LM) HasLayer(name string) bool {
	for _, p := range m.params {
		if p.Layer == name {
			return true
		}
	}
	return false
}

// SaveState stores a copy of every parameter under "param/<name>" (the graph.Model convention)
// and the architecture under MetaArch.
func (m *LM) SaveState(c *Checkpoint) {
	putArch(c, m.Arch())
	for _, p := range m.params {
		c.Put("param/"+p.Name, p.Value)
	}
}

// LoadState copies every parameter from "param/<name>" in c; all must be present with matching
// dtype and shape.
func (m *LM) LoadState(c *Checkpoint) error {
	for _, p := range m.params {
		if err := c.CopyTo("param/"+p.Name, p.Value); err != nil {
			return err
		}
	}
	return nil
}
