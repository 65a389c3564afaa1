package graph

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// KVQuantizer is an optional extension of Quantizer for LMs. When LMOptions.Quant implements it,
// LM.Build calls QuantizeKV at every KV-cache site (LM.KVSites) with the keys (after RoPE) or the
// values of one block as they enter the runtime's KV cache, shaped [Batch, Heads, Ctx*HeadDim]
// (the head is axis 1), and uses y when ok. ok false leaves the site unquantized (float in
// training; in a graph with LMOptions.Points the KV-cache point then applies).
type KVQuantizer interface {
	QuantizeKV(s Site, x *G.Node) (y *G.Node, ok bool, err error)
}

// KVSites lists the KV-cache sites of the LM in graph order: per block "blk<i>.attn.k_cache" (the
// keys after RoPE) and "blk<i>.attn.v_cache" (the values), Kind SiteKVCache, Axis 0 (the head),
// Shape [Heads, Ctx*HeadDim] (per sequence). They are not among Sites: a quantizer that
// implements KVQuantizer opts in to them (package qat does when its QConfig sets KV).
func (m *LM) KVSites() []Site {
	c := m.Config
	var s []Site
	for i := 0; i < c.Layers; i++ {
		for _, n := range []string{"k_cache", "v_cache"} {
			s = append(s, Site{Name: fmt.Sprintf("blk%d.attn.%s", i, n), Kind: SiteKVCache, Axis: 0, Shape: []int{c.Heads, c.Ctx * (c.Dim / c.Heads)}})
		}
	}
	return s
}

// kvSite quantizes per-head sequences x [B*H, T, hd] at the KV-cache site name with the
// quantizer's QuantizeKV (ok false: no KVQuantizer, or the site stays float).
func (n *LMNet) kvSite(name string, x *G.Node) (*G.Node, bool, error) {
	kq, ok := n.Opts.Quant.(KVQuantizer)
	if !ok {
		return x, false, nil
	}
	s := x.Shape().Clone()
	c := n.LM.Config
	r, err := G.Reshape(x, []int{s[0] / c.Heads, c.Heads, s[1] * s[2]})
	if err != nil {
		return nil, false, err
	}
	site := Site{Name: name, Kind: SiteKVCache, Axis: 0, Shape: []int{c.Heads, s[1] * s[2]}}
	y, ok, err := kq.QuantizeKV(site, r)
	if err != nil || !ok {
		return x, false, err
	}
	n.Sites[name] = y
	if y, err = G.Reshape(y, s); err != nil {
		return nil, false, err
	}
	return y, true, nil
}

// kvRound returns the attention rounding of block prefix b ("blk<i>.") with the KV-cache sites
// applied to the keys and values before round (which may be nil).
func (n *LMNet) kvRound(b string, round func(string, *G.Node) (*G.Node, error)) func(string, *G.Node) (*G.Node, error) {
	if _, ok := n.Opts.Quant.(KVQuantizer); !ok {
		return round
	}
	return func(operand string, x *G.Node) (*G.Node, error) {
		var err error
		switch operand {
		case AttnKey:
			x, _, err = n.kvSite(b+"attn.k_cache", x)
		case AttnValue:
			x, _, err = n.kvSite(b+"attn.v_cache", x)
		}
		if err != nil || round == nil {
			return x, err
		}
		return round(operand, x)
	}
}
