package llama

import (
	"fmt"
	"slices"
)

// Config holds the hyper-parameters of a Llama-architecture model.
type Config struct {
	Vocab    int     // vocabulary size
	Dim      int     // residual width (llama.embedding_length)
	Layers   int     // transformer blocks (llama.block_count)
	Heads    int     // attention heads (llama.attention.head_count)
	KVHeads  int     // key/value heads (llama.attention.head_count_kv); 0 means Heads
	Hidden   int     // SwiGLU hidden width (llama.feed_forward_length)
	Ctx      int     // training context length (llama.context_length)
	RoPEBase float64 // rotary base (llama.rope.freq_base)
	Eps      float64 // RMSNorm epsilon (llama.attention.layer_norm_rms_epsilon)
}

func (c Config) kvHeads() int {
	if c.KVHeads == 0 {
		return c.Heads
	}
	return c.KVHeads
}

// HeadDim returns Dim/Heads.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// Validate checks that the sizes are positive and consistent.
func (c Config) Validate() error {
	switch {
	case c.Vocab < 1 || c.Dim < 1 || c.Layers < 1 || c.Heads < 1 || c.kvHeads() < 1 || c.Hidden < 1 || c.Ctx < 1:
		return fmt.Errorf("llama: config %+v: sizes must be positive", c)
	case c.Dim%c.Heads != 0 || c.HeadDim()%2 != 0:
		return fmt.Errorf("llama: width %d does not split into %d heads of even size", c.Dim, c.Heads)
	case c.Heads%c.kvHeads() != 0:
		return fmt.Errorf("llama: %d heads are not a multiple of %d key/value heads", c.Heads, c.kvHeads())
	case !(c.RoPEBase > 0) || !(c.Eps > 0):
		return fmt.Errorf("llama: RoPE base %v and norm epsilon %v must be positive", c.RoPEBase, c.Eps)
	case int64(c.Vocab) > 1<<31 || c.Dim > 1<<20 || c.Hidden > 1<<22 || c.Layers > 1<<12 || c.Ctx > 1<<24:
		return fmt.Errorf("llama: config %+v is larger than this package handles", c)
	}
	return nil
}

// Weights is a Llama-architecture model: its config, float32 tensors by GGUF name (row-major,
// the last dimension contiguous, i.e. ne[0]) and metadata to keep (tokenizer keys of an imported
// file; written back unchanged by Encode).
type Weights struct {
	Name    string
	Config  Config
	Tensors map[string][]float32
	Meta    map[string]any
}

// shape is a tensor's row-major shape [rows, cols] (cols = ne[0]); vectors have rows 1.
type shape struct{ rows, cols int }

// TensorShapes returns every tensor name of the model with its shape, in the order of the file.
func (c Config) tensorShapes() ([]string, map[string]shape) {
	D, F, hd := c.Dim, c.Hidden, c.HeadDim()
	kv := c.kvHeads() * hd
	names := []string{"token_embd.weight"}
	sh := map[string]shape{"token_embd.weight": {c.Vocab, D}}
	add := func(n string, s shape) { names = append(names, n); sh[n] = s }
	for i := 0; i < c.Layers; i++ {
		b := fmt.Sprintf("blk.%d.", i)
		add(b+"attn_norm.weight", shape{1, D})
		add(b+"attn_q.weight", shape{c.Heads * hd, D})
		add(b+"attn_k.weight", shape{kv, D})
		add(b+"attn_v.weight", shape{kv, D})
		add(b+"attn_output.weight", shape{D, c.Heads * hd})
		add(b+"ffn_norm.weight", shape{1, D})
		add(b+"ffn_gate.weight", shape{F, D})
		add(b+"ffn_up.weight", shape{F, D})
		add(b+"ffn_down.weight", shape{D, F})
	}
	add("output_norm.weight", shape{1, D})
	add("output.weight", shape{c.Vocab, D})
	return names, sh
}

// Check validates the config and that Tensors holds exactly the model's tensors with the right
// sizes and finite values.
func (w *Weights) Check() error {
	if err := w.Config.Validate(); err != nil {
		return err
	}
	names, sh := w.Config.tensorShapes()
	for _, n := range names {
		x, ok := w.Tensors[n]
		if !ok {
			return fmt.Errorf("llama: tensor %q missing", n)
		}
		if s := sh[n]; len(x) != s.rows*s.cols {
			return fmt.Errorf("llama: tensor %q has %d values, want %d x %d", n, len(x), s.rows, s.cols)
		}
		for i, v := range x {
			if v-v != 0 {
				return fmt.Errorf("llama: tensor %q value %d is %v", n, i, v)
			}
		}
	}
	if len(w.Tensors) != len(names) {
		for n := range w.Tensors {
			if _, ok := sh[n]; !ok {
				return fmt.Errorf("llama: unexpected tensor %q (llama.cpp rejects extra tensors)", n)
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
