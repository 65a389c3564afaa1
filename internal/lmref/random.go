package lmref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// Config is the shape and quantization of a random Llama-style LM (the architecture of graph.LM:
// pre-norm blocks h += Attn(RMSNorm(h)); h += SwiGLU-MLP(RMSNorm(h)), final RMSNorm, untied head).
type Config struct {
	Vocab, Dim, Layers, Heads, KVHeads, Hidden, Ctx int
	Bits                                            int  // weight bits: 8 (per-channel) or 4
	Group                                           int  // int4 group size along the input (0: per-channel)
	Hadamard                                        bool // online Hadamard before each down projection (Hidden a power of two)
	Theta, Eps                                      float32
}

// Tiny is the default tiny model: d=64, 2 layers, 4 heads, SwiGLU hidden 128, context 64, bytes.
func Tiny(bits, group int) Config {
	return Config{Vocab: 256, Dim: 64, Layers: 2, Heads: 4, Hidden: 128, Ctx: 64, Bits: bits, Group: group}
}

// Stories15M is the 15M-parameter configuration: d=288, 6 layers, 6 heads, hidden 768, context 256.
func Stories15M(bits, group int) Config {
	return Config{Vocab: 256, Dim: 288, Layers: 6, Heads: 6, Hidden: 768, Ctx: 256, Bits: bits, Group: group}
}

func (c *Config) defaults() error {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.Theta == 0 {
		c.Theta = 10000
	}
	if c.Eps == 0 {
		c.Eps = 1e-5
	}
	if c.Vocab < 1 || c.Dim < 1 || c.Layers < 1 || c.Heads < 1 || c.Hidden < 1 || c.Ctx < 1 || c.Dim%c.Heads != 0 {
		return fmt.Errorf("lmref: config %+v: sizes must be positive and Dim divisible by Heads", *c)
	}
	if c.Bits != 8 && c.Bits != 4 {
		return fmt.Errorf("lmref: %d-bit weights: want 8 or 4", c.Bits)
	}
	return nil
}

// floatWeights are the float parameters of a random LM, by linear/table name ([N][K] row-major).
type floatWeights struct {
	mats  map[string][]float32
	shape map[string][2]int
}

// RandomLM builds an LM with random weights (embedding N(0,1), linears N(0,1/In), residual
// projections scaled by 1/sqrt(2*Layers), gains 1), quantized round-to-nearest (int8 per channel,
// or int4 per channel / per group with 8-bit integer group scales), and activation and KV-cache
// scales calibrated (absolute maxima, symmetric) on the float model over one random sequence of
// Ctx tokens. The result goes through the qmodel Builder and validation.
func RandomLM(c Config, seed uint64) (*qmodel.Model, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	fw := floatWeights{mats: map[string][]float32{}, shape: map[string][2]int{}}
	mat := func(name string, n, k int, std float64) {
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
		fw.mats[name], fw.shape[name] = w, [2]int{n, k}
	}
	hd := c.Dim / c.Heads
	resid := 1 / math.Sqrt(2*float64(c.Layers))
	mat("tok_emb", c.Vocab, c.Dim, 1)
	for l := 0; l < c.Layers; l++ {
		b := fmt.Sprintf("blk%d.", l)
		is := 1 / math.Sqrt(float64(c.Dim))
		mat(b+"attn.wq", c.Dim, c.Dim, is)
		mat(b+"attn.wk", c.KVHeads*hd, c.Dim, is)
		mat(b+"attn.wv", c.KVHeads*hd, c.Dim, is)
		mat(b+"attn.wo", c.Dim, c.Dim, is*resid)
		mat(b+"mlp.w1", c.Hidden, c.Dim, is)
		mat(b+"mlp.w3", c.Hidden, c.Dim, is)
		mat(b+"mlp.w2", c.Dim, c.Hidden, resid/math.Sqrt(float64(c.Hidden)))
	}
	mat("head", c.Vocab, c.Dim, 1/math.Sqrt(float64(c.Dim)))

	// Pass 1: placeholder activation scales; the float forward ignores them.
	absmax := map[string]float64{}
	m, err := build(c, fw, func(string) float32 { return 0.05 }, func(string, int) float32 { return 0.05 })
	if err != nil {
		return nil, err
	}
	f, err := NewFloat(m)
	if err != nil {
		return nil, err
	}
	f.Observe = func(name string, v []float32) {
		if len(v) == hd*c.KVHeads && (hasSuffix(name, "/k") || hasSuffix(name, "/v")) {
			for g := 0; g < c.KVHeads; g++ {
				key := fmt.Sprintf("%s/%d", name, g)
				for _, x := range v[g*hd : (g+1)*hd] {
					absmax[key] = math.Max(absmax[key], math.Abs(float64(x)))
				}
			}
			return
		}
		for _, x := range v {
			absmax[name] = math.Max(absmax[name], math.Abs(float64(x)))
		}
	}
	for t := 0; t < c.Ctx; t++ {
		if _, err := f.Step(rng.IntN(c.Vocab)); err != nil {
			return nil, err
		}
	}
	scale := func(name string) float32 {
		if a := absmax[name]; a > 0 {
			return float32(a / 127)
		}
		return 0.01
	}
	cache := func(name string, g int) float32 { // "blk0.attn.k_cache" was observed as "blk0.attn/k"
		if op, ok := strings.CutSuffix(name, ".k_cache"); ok {
			return scale(fmt.Sprintf("%s/k/%d", op, g))
		}
		return scale(fmt.Sprintf("%s/v/%d", strings.TrimSuffix(name, ".v_cache"), g))
	}
	return build(c, fw, scale, cache)
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// quantize returns the grouped int weights of a float matrix (round to nearest).
func quantize(w []float32, n, k, bits, group int) qmodel.GroupedWeights {
	q := make([]int8, n*k)
	scales := make([]float32, n)
	out := qmodel.GroupedWeights{Weights: qmodel.Weights{Values: q, Shape: []int{n, k}, Scales: scales, Int4: bits == 4}}
	lim := float64(quant.NarrowSigned(bits).Max)
	if bits == 4 && group > 0 && group < k {
		groups := k / group
		gs := make([]int32, n*groups)
		for r := 0; r < n; r++ {
			sg := make([]float64, groups)
			mx := 0.0
			for g := 0; g < groups; g++ {
				for _, x := range w[r*k+g*group : r*k+(g+1)*group] {
					sg[g] = math.Max(sg[g], math.Abs(float64(x))/lim)
				}
				mx = math.Max(mx, sg[g])
			}
			if mx == 0 {
				mx = 1
			}
			row := mx / 255 // 8-bit integer group scales
			scales[r] = float32(row)
			for g := 0; g < groups; g++ {
				s := max(1, math.Round(sg[g]/row))
				gs[r*groups+g] = int32(s)
				for j := g * group; j < (g+1)*group; j++ {
					q[r*k+j] = int8(max(-lim, min(lim, math.Round(float64(w[r*k+j])/(float64(scales[r])*s)))))
				}
			}
		}
		out.GroupSize, out.GroupScales = group, gs
		return out
	}
	for r := 0; r < n; r++ {
		mx := 0.0
		for _, x := range w[r*k : (r+1)*k] {
			mx = math.Max(mx, math.Abs(float64(x)))
		}
		if mx == 0 {
			mx = lim
		}
		scales[r] = float32(mx / lim)
		for j := r * k; j < (r+1)*k; j++ {
			q[j] = int8(max(-lim, min(lim, math.Round(float64(w[j])/float64(scales[r])))))
		}
	}
	return out
}

// Spec is what Build needs besides the architecture: the integer weights of every Embedding,
// Linear and LMHead op, the RMSNorm gains and the quantization of every activation, each by
// its op name (tok_emb, blk<i>.attn_norm, blk<i>.attn.wq ... blk<i>.mlp.res, norm, head; see Build).
type Spec struct {
	Name, Producer string
	Meta           map[string]string
	Weights        func(name string) qmodel.GroupedWeights
	Gain           func(name string) []float32 // nil: all ones
	Act            func(name string) quant.Params
	// Cache returns the symmetric scale of KV head g of the key ("blk<i>.attn.k_cache") or value
	// ("blk<i>.attn.v_cache") cache.
	Cache func(name string, g int) float32
	// CacheMax, when set, returns the largest |level| of that cache (0 or 127: the int8 cache's
	// full range; 7: 4-bit levels).
	CacheMax func(name string) int
}

// Build lowers a Llama-style LM (the architecture of graph.LM and of Config; Bits and Group are
// not used: the weights come from s) to a validated qmodel language model through the Builder:
//
//	tok_emb (Embedding) -> per block: attn_norm, attn.wq|wk|wv, attn.rope_q|rope_k, attn (Attention),
//	attn.wo, attn.res (Add), mlp_norm, mlp.w1|w3, mlp.swiglu, [mlp.hadamard], mlp.w2, mlp.res
//	-> norm -> head (LMHead) -> logits (Dequantize).
func Build(c Config, s Spec) (*qmodel.Model, error) {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.Heads < 1 || c.Dim%c.Heads != 0 {
		return nil, fmt.Errorf("lmref: Dim %d does not split into %d heads", c.Dim, c.Heads)
	}
	p := s.Act
	wts := s.Weights
	gain := func(name string, n int) []float32 {
		if s.Gain != nil {
			if g := s.Gain(name); g != nil {
				return g
			}
		}
		g := make([]float32, n)
		for i := range g {
			g[i] = 1
		}
		return g
	}
	hd := c.Dim / c.Heads
	name := s.Name
	if name == "" {
		name = "lm"
	}
	b := qmodel.NewBuilder(name)
	if s.Producer != "" {
		b.SetProducer(s.Producer)
	}
	b.SetMeta("architecture", "llama")
	for k, v := range s.Meta {
		b.SetMeta(k, v)
	}
	ids := b.TokenInput("tokens")
	h := b.Embedding("tok_emb", ids, wts("tok_emb"), p("tok_emb"))
	for l := 0; l < c.Layers; l++ {
		n := fmt.Sprintf("blk%d.", l)
		x := b.RMSNorm(n+"attn_norm", h, gain(n+"attn_norm", c.Dim), c.Eps, p(n+"attn_norm"))
		q := b.Linear(n+"attn.wq", x, wts(n+"attn.wq"), p(n+"attn.wq"))
		k := b.Linear(n+"attn.wk", x, wts(n+"attn.wk"), p(n+"attn.wk"))
		v := b.Linear(n+"attn.wv", x, wts(n+"attn.wv"), p(n+"attn.wv"))
		q = b.RoPE(n+"attn.rope_q", q, c.Heads, hd, c.Ctx, c.Theta, p(n+"attn.rope_q"))
		k = b.RoPE(n+"attn.rope_k", k, c.KVHeads, hd, c.Ctx, c.Theta, p(n+"attn.rope_k"))
		ks, vs := make([]float32, c.KVHeads), make([]float32, c.KVHeads)
		for g := range ks {
			ks[g], vs[g] = s.Cache(n+"attn.k_cache", g), s.Cache(n+"attn.v_cache", g)
		}
		ao := qmodel.AttentionOptions{Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: hd, MaxSeq: c.Ctx, KCacheScales: ks, VCacheScales: vs}
		if s.CacheMax != nil {
			ao.KCacheMax, ao.VCacheMax = s.CacheMax(n+"attn.k_cache"), s.CacheMax(n+"attn.v_cache")
		}
		a := b.Attention(n+"attn", q, k, v, ao, p(n+"attn"))
		o := b.Linear(n+"attn.wo", a, wts(n+"attn.wo"), p(n+"attn.wo"))
		h = b.Add(n+"attn.res", h, o, qmodel.ActNone, p(n+"attn.res"))
		x = b.RMSNorm(n+"mlp_norm", h, gain(n+"mlp_norm", c.Dim), c.Eps, p(n+"mlp_norm"))
		g := b.Linear(n+"mlp.w1", x, wts(n+"mlp.w1"), p(n+"mlp.w1"))
		u := b.Linear(n+"mlp.w3", x, wts(n+"mlp.w3"), p(n+"mlp.w3"))
		sw := b.SwiGLU(n+"mlp.swiglu", g, u, p(n+"mlp.swiglu"))
		if c.Hadamard {
			sw = b.Hadamard(n+"mlp.hadamard", sw, c.Hidden, p(n+"mlp.hadamard"))
		}
		o = b.Linear(n+"mlp.w2", sw, wts(n+"mlp.w2"), p(n+"mlp.w2"))
		h = b.Add(n+"mlp.res", h, o, qmodel.ActNone, p(n+"mlp.res"))
	}
	x := b.RMSNorm("norm", h, gain("norm", c.Dim), c.Eps, p("norm"))
	b.Output(b.Dequantize("logits", b.LMHead("head", x, wts("head"))))
	return b.Build()
}

func build(c Config, fw floatWeights, scale func(string) float32, cache func(string, int) float32) (*qmodel.Model, error) {
	return Build(c, Spec{
		Name: "random-lm", Producer: "lmref.RandomLM",
		Weights: func(name string) qmodel.GroupedWeights {
			s := fw.shape[name]
			return quantize(fw.mats[name], s[0], s[1], c.Bits, c.Group)
		},
		Act:   func(name string) quant.Params { return quant.Params{Scale: scale(name)} },
		Cache: cache,
	})
}
