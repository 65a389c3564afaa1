package llama

import (
	"fmt"
	"strings"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/internal/atomicfile"
)

// EncodeOptions select the tensor types of an encoded model.
type EncodeOptions struct {
	// Type of the linear weights (attention, MLP, output): F32 (the zero value), F16, Q8_0 or Q4_0.
	Type gguf.TensorType
	// EmbedType is the type of token_embd; nil means F32 (llama.cpp dequantizes the embedding
	// rows exactly, but a model trained with a float embedding keeps its values only in F32).
	EmbedType *gguf.TensorType
	// Exact writes the linear weights (those of type Type) with gguf.QuantizeExact: weights that
	// are already on Type's grid, as FromPrepared returns them for a model trained with
	// qat.GGMLPreset.LearnScale, are stored so that llama.cpp reads back exactly those values
	// (learned fp16 block scales included); a block off the grid is an error.
	Exact bool
}

// FileType returns llama.cpp's general.file_type for weights of type t (LLAMA_FTYPE_*).
func FileType(t gguf.TensorType) (uint32, error) {
	switch t {
	case gguf.F32:
		return 0, nil
	case gguf.F16:
		return 1, nil
	case gguf.Q4_0:
		return 2, nil
	case gguf.Q8_0:
		return 7, nil
	}
	return 0, fmt.Errorf("llama: tensor type %v is not one of F32, F16, Q8_0, Q4_0", t)
}

// Encode returns w as a llama GGUF file. Without tokenizer metadata in w.Meta, a model with a
// vocabulary of 256 gets the byte-level "gpt2" tokenizer (token id = byte value, BOS and EOS
// set to 0x0A, newline); other vocabularies need their tokenizer in Meta.
func Encode(w *Weights, o EncodeOptions) (*gguf.File, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	ft, err := FileType(o.Type)
	if err != nil {
		return nil, err
	}
	embed := gguf.F32
	if o.EmbedType != nil {
		embed = *o.EmbedType
		if _, err := FileType(embed); err != nil {
			return nil, err
		}
	}
	c := w.Config
	f := &gguf.File{}
	f.Set("general.architecture", "llama")
	name := w.Name
	if name == "" {
		name = "qatgo-llama"
	}
	f.Set("general.name", name)
	f.Set("general.file_type", ft)
	f.Set("llama.vocab_size", uint32(c.Vocab))
	f.Set("llama.context_length", uint32(c.Ctx))
	f.Set("llama.embedding_length", uint32(c.Dim))
	f.Set("llama.block_count", uint32(c.Layers))
	f.Set("llama.feed_forward_length", uint32(c.Hidden))
	f.Set("llama.attention.head_count", uint32(c.Heads))
	f.Set("llama.attention.head_count_kv", uint32(c.kvHeads()))
	f.Set("llama.rope.dimension_count", uint32(c.HeadDim()))
	f.Set("llama.rope.freq_base", float32(c.RoPEBase))
	f.Set("llama.attention.layer_norm_rms_epsilon", float32(c.Eps))
	if err := setTokenizer(f, w); err != nil {
		return nil, err
	}
	names, sh := c.tensorShapes()
	for _, n := range names {
		s := sh[n]
		t := o.Type
		switch {
		case s.rows == 1 && strings.HasSuffix(n, "norm.weight"):
			t = gguf.F32
		case n == "token_embd.weight":
			t = embed
		}
		if t.BlockSize() > 1 && s.cols%t.BlockSize() != 0 {
			return nil, fmt.Errorf("llama: %s needs rows of a multiple of %d values, %s has %d", t, t.BlockSize(), n, s.cols)
		}
		quantize := gguf.Quantize
		if o.Exact && t == o.Type && s.rows > 1 && n != "token_embd.weight" {
			quantize = gguf.QuantizeExact
		}
		data, err := quantize(t, w.Tensors[n], s.cols)
		if err != nil {
			return nil, fmt.Errorf("llama: %s: %w", n, err)
		}
		dims := []uint64{uint64(s.cols), uint64(s.rows)}
		if s.rows == 1 && t == gguf.F32 && strings.HasSuffix(n, "norm.weight") {
			dims = dims[:1]
		}
		if err := f.AddTensor(n, t, dims, data); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Tokenizer keys of the byte-level vocabulary.
const (
	keyTokModel = "tokenizer.ggml.model"
	keyTokens   = "tokenizer.ggml.tokens"
)

func setTokenizer(f *gguf.File, w *Weights) error {
	has := false
	for _, k := range sortedKeys(w.Meta) {
		if strings.HasPrefix(k, "tokenizer.") {
			has = true
		}
		f.Set(k, w.Meta[k])
	}
	if has {
		if _, err := f.String(keyTokModel); err != nil {
			return fmt.Errorf("llama: tokenizer metadata without %s: %w", keyTokModel, err)
		}
		if toks, ok := mustGet[[]string](f, keyTokens); !ok || len(toks) != w.Config.Vocab {
			return fmt.Errorf("llama: tokenizer metadata needs %s with %d strings", keyTokens, w.Config.Vocab)
		}
		return nil
	}
	if w.Config.Vocab != 256 {
		return fmt.Errorf("llama: a vocabulary of %d needs its tokenizer in Weights.Meta (only 256 bytes has a default)", w.Config.Vocab)
	}
	types := make([]int32, 256)
	for i := range types {
		types[i] = 1 // NORMAL
	}
	f.Set(keyTokModel, "gpt2")
	f.Set("tokenizer.ggml.pre", "default")
	f.Set(keyTokens, ByteTokens())
	f.Set("tokenizer.ggml.token_type", types)
	f.Set("tokenizer.ggml.merges", []string{})
	f.Set("tokenizer.ggml.bos_token_id", uint32('\n'))
	f.Set("tokenizer.ggml.eos_token_id", uint32('\n'))
	f.Set("tokenizer.ggml.add_bos_token", false)
	f.Set("tokenizer.ggml.add_eos_token", false)
	return nil
}

func mustGet[T any](f *gguf.File, key string) (T, bool) {
	v, ok := f.Get(key)
	t, ok2 := v.(T)
	return t, ok && ok2
}

// WriteFile encodes w (see [Encode]) and writes it to path atomically (temporary file and rename).
func WriteFile(path string, w *Weights, o EncodeOptions) error {
	f, err := Encode(w, o)
	if err != nil {
		return err
	}
	b, err := f.Encode()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

// ReadFile reads and decodes the llama GGUF file at path.
func ReadFile(path string) (*Weights, error) {
	f, err := gguf.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}
