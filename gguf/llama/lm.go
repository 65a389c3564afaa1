package llama

// The adapter between qatgo's graph.LM and Weights: the only file of this package that uses the
// LM's API (its config fields and parameter names).

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// lmNames maps the GGUF tensor names of block i (or of the model, i < 0) to graph.LM parameters.
func lmNames(c Config) map[string]string {
	m := map[string]string{
		"token_embd.weight":  "tok_emb.weight",
		"output_norm.weight": "norm.gain",
		"output.weight":      "head.weight",
	}
	for i := 0; i < c.Layers; i++ {
		g, b := fmt.Sprintf("blk.%d.", i), fmt.Sprintf("blk%d.", i)
		for k, v := range map[string]string{
			"attn_norm.weight": "attn_norm.gain", "attn_q.weight": "attn.wq.weight", "attn_k.weight": "attn.wk.weight",
			"attn_v.weight": "attn.wv.weight", "attn_output.weight": "attn.wo.weight", "ffn_norm.weight": "mlp_norm.gain",
			"ffn_gate.weight": "mlp.w1.weight", "ffn_up.weight": "mlp.w3.weight", "ffn_down.weight": "mlp.w2.weight",
		} {
			m[g+k] = b + v
		}
	}
	return m
}

func configOf(c graph.LMConfig) Config {
	return Config{Vocab: c.Vocab, Dim: c.Dim, Layers: c.Layers, Heads: c.Heads, KVHeads: c.Heads, Hidden: c.Hidden,
		Ctx: c.Ctx, RoPEBase: c.RoPEBase, Eps: c.Eps}
}

// FromLM returns the weights of m (a copy, in float32).
func FromLM(m *graph.LM) (*Weights, error) {
	c := configOf(m.Config)
	w := &Weights{Name: m.Name, Config: c, Tensors: map[string][]float32{}}
	for g, p := range lmNames(c) {
		prm := m.Param(p)
		if prm == nil {
			return nil, fmt.Errorf("llama: LM %q has no parameter %q", m.Name, p)
		}
		switch d := prm.Value.Data().(type) {
		case []float32:
			w.Tensors[g] = append([]float32(nil), d...)
		case []float64:
			x := make([]float32, len(d))
			for i, v := range d {
				x[i] = float32(v)
			}
			w.Tensors[g] = x
		default:
			return nil, fmt.Errorf("llama: parameter %q has dtype %v", p, prm.Value.Dtype())
		}
	}
	return w, w.Check()
}

// LM builds a float32 graph.LM named name holding w. Grouped-query attention (KVHeads <
// Heads) has no graph.LM counterpart and is an error.
func (w *Weights) LM(name string) (*graph.LM, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	c := w.Config
	if c.kvHeads() != c.Heads {
		return nil, fmt.Errorf("llama: %d key/value heads for %d heads: graph.LM has no grouped-query attention", c.kvHeads(), c.Heads)
	}
	m, err := graph.NewLM(name, graph.LMConfig{Vocab: c.Vocab, Dim: c.Dim, Layers: c.Layers, Heads: c.Heads,
		Hidden: c.Hidden, Ctx: c.Ctx, RoPEBase: c.RoPEBase, Eps: c.Eps}, tensor.Float32, 0)
	if err != nil {
		return nil, err
	}
	for g, p := range lmNames(c) {
		prm := m.Param(p)
		if prm == nil {
			return nil, fmt.Errorf("llama: graph.LM has no parameter %q", p)
		}
		copy(prm.Value.Data().([]float32), w.Tensors[g])
	}
	return m, nil
}

// LMFromCheckpoint rebuilds the LM a checkpoint holds: from its recorded architecture
// (graph.FromCheckpoint, Meta["arch"]) or, for older checkpoints, from Meta["config"] (the "%+v"
// of graph.LMConfig that examples/tinyllm wrote) and the parameters "param/<name>". name names
// the LM when the checkpoint does not. A checkpoint that records an online rotation (Meta
// "hadamard_seed", "rotation" or "rotate_seed") is refused: llama.cpp cannot run it.
func LMFromCheckpoint(ck *graph.Checkpoint, name string) (*graph.LM, error) {
	for _, k := range []string{"hadamard_seed", "rotation", "rotate_seed"} {
		if v, ok := ck.Meta[k]; ok && v != "" {
			return nil, fmt.Errorf("llama: the checkpoint uses online rotations (%s = %s) that llama.cpp cannot run; fold them into the weights first", k, v)
		}
	}
	if _, ok := ck.Meta[graph.MetaArch]; ok {
		n, err := graph.FromCheckpoint(ck)
		if err != nil {
			return nil, fmt.Errorf("llama: %w", err)
		}
		m, ok := n.(*graph.LM)
		if !ok {
			return nil, fmt.Errorf("llama: the checkpoint holds a %T, not a language model (graph.LM)", n)
		}
		return m, nil
	}
	s, ok := ck.Meta["config"]
	if !ok {
		return nil, fmt.Errorf("llama: the checkpoint records no LM (neither Meta[%q] nor Meta[\"config\"])", graph.MetaArch)
	}
	c, err := parseLMConfig(s)
	if err != nil {
		return nil, err
	}
	dt := tensor.Float32
	if t, ok := ck.Tensors["param/tok_emb.weight"]; ok && t.Dtype() == tensor.Float64 {
		dt = tensor.Float64
	}
	m, err := graph.NewLM(name, c, dt, 0)
	if err != nil {
		return nil, err
	}
	if err := m.LoadState(ck); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	return m, nil
}

var lmConfigField = regexp.MustCompile(`(\w+):([-+0-9.eE]+)`)

func parseLMConfig(s string) (graph.LMConfig, error) {
	var c graph.LMConfig
	ints := map[string]*int{"Vocab": &c.Vocab, "Dim": &c.Dim, "Layers": &c.Layers, "Heads": &c.Heads, "Hidden": &c.Hidden, "Ctx": &c.Ctx}
	floats := map[string]*float64{"RoPEBase": &c.RoPEBase, "Eps": &c.Eps}
	seen := 0
	for _, m := range lmConfigField.FindAllStringSubmatch(s, -1) {
		if p, ok := ints[m[1]]; ok {
			v, err := strconv.Atoi(m[2])
			if err != nil {
				return c, fmt.Errorf("llama: LM config %q: %s: %v", s, m[1], err)
			}
			*p, seen = v, seen+1
		} else if p, ok := floats[m[1]]; ok {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return c, fmt.Errorf("llama: LM config %q: %s: %v", s, m[1], err)
			}
			*p = v
		}
	}
	if seen != len(ints) {
		return c, fmt.Errorf("llama: LM config %q lacks some of Vocab, Dim, Layers, Heads, Hidden, Ctx", s)
	}
	return c, nil
}
