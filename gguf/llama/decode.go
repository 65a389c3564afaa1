package llama

import (
	"fmt"
	"strings"

	"github.com/qatgo/qatgo/gguf"
)

// Decode reads a llama-architecture GGUF file: the config from its "llama.*" metadata, every
// tensor dequantized to float32 (F32, F16, Q8_0 and Q4_0 tensors), and its tokenizer metadata
// (every "tokenizer.*" key) into Meta. A missing output.weight is tied to token_embd, as
// llama.cpp does. Any other tensor type, a tensor of the wrong shape, or a missing or extra
// tensor is an error.
func Decode(f *gguf.File) (*Weights, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	if arch != "llama" {
		return nil, fmt.Errorf("llama: architecture %q is not llama", arch)
	}
	u := func(key string, def uint64) (int, error) {
		if _, ok := f.Get(key); !ok && def != 0 {
			return int(def), nil
		}
		v, err := f.Uint(key)
		if err != nil {
			return 0, fmt.Errorf("llama: %w", err)
		}
		if v > 1<<31 {
			return 0, fmt.Errorf("llama: %s = %d is too large", key, v)
		}
		return int(v), nil
	}
	var c Config
	for _, p := range []struct {
		dst *int
		key string
	}{{&c.Ctx, "llama.context_length"}, {&c.Dim, "llama.embedding_length"}, {&c.Layers, "llama.block_count"},
		{&c.Hidden, "llama.feed_forward_length"}, {&c.Heads, "llama.attention.head_count"}} {
		if *p.dst, err = u(p.key, 0); err != nil {
			return nil, err
		}
	}
	if c.KVHeads, err = u("llama.attention.head_count_kv", uint64(max(c.Heads, 1))); err != nil {
		return nil, err
	}
	if c.Eps, err = f.Float("llama.attention.layer_norm_rms_epsilon"); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	c.RoPEBase = 10000
	if _, ok := f.Get("llama.rope.freq_base"); ok {
		if c.RoPEBase, err = f.Float("llama.rope.freq_base"); err != nil {
			return nil, fmt.Errorf("llama: %w", err)
		}
	}
	emb := f.Tensor("token_embd.weight")
	if emb == nil || len(emb.Dims) != 2 {
		return nil, fmt.Errorf("llama: token_embd.weight missing or not a matrix")
	}
	c.Vocab = int(min(emb.Dims[1], 1<<32))
	if c.Heads > 0 && c.Dim%c.Heads == 0 {
		if rot, err := u("llama.rope.dimension_count", uint64(max(c.Dim/c.Heads, 1))); err != nil {
			return nil, err
		} else if rot != c.Dim/c.Heads {
			return nil, fmt.Errorf("llama: rope dimension %d differs from the head size %d (partial RoPE is not supported)", rot, c.Dim/c.Heads)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	w := &Weights{Config: c, Tensors: map[string][]float32{}, Meta: map[string]any{}}
	w.Name, _ = f.String("general.name")
	for _, kv := range f.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			w.Meta[kv.Key] = kv.Value
		}
	}
	names, sh := c.tensorShapes()
	for _, n := range names {
		t := f.Tensor(n)
		if t == nil && n == "output.weight" {
			t = emb // tied
		}
		if t == nil {
			return nil, fmt.Errorf("llama: tensor %q missing", n)
		}
		s := sh[n]
		if want := uint64(s.rows) * uint64(s.cols); t.Elements() != want || t.Dims[0] != uint64(s.cols) {
			return nil, fmt.Errorf("llama: tensor %q has dims %v, want [%d %d]", n, t.Dims, s.cols, s.rows)
		}
		x, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("llama: %w", err)
		}
		w.Tensors[n] = x
	}
	if want := len(names) - 1; len(f.Tensors) != want+1 && !(len(f.Tensors) == want && f.Tensor("output.weight") == nil) {
		for _, t := range f.Tensors {
			if _, ok := sh[t.Name]; !ok {
				return nil, fmt.Errorf("llama: unexpected tensor %q", t.Name)
			}
		}
	}
	return w, w.Check()
}
