package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/gguf/llama"
	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// GGUF -> qatgo import -> checkpoint -> qatgo export -format gguf gives the same tensors and
// keeps a non-byte tokenizer with its exact metadata types.
func TestImportGGUFRoundTrip(t *testing.T) {
	m, err := graph.NewLM("v300", graph.LMConfig{Vocab: 320, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 16}, tensor.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := llama.FromLM(m)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]string, 320)
	for i := range toks {
		toks[i] = fmt.Sprintf("<t%d>", i)
	}
	w.Meta = map[string]any{"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": toks,
		"tokenizer.ggml.scores": make([]float32, 320), "tokenizer.ggml.bos_token_id": uint32(1)}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.gguf")
	if err := llama.WriteFile(src, w, llama.EncodeOptions{}); err != nil {
		t.Fatal(err)
	}
	ckpt, back := filepath.Join(dir, "m.ckpt"), filepath.Join(dir, "back.gguf")
	var so, se bytes.Buffer
	if code := Main([]string{"import", src, "-o", ckpt}, &so, &se); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, se.String())
	}
	if !strings.Contains(so.String(), "vocab 320") {
		t.Errorf("import output %q", so.String())
	}
	if code := Main([]string{"export", "-format", "gguf", ckpt, "-o", back}, &so, &se); code != exitOK {
		t.Fatalf("export: exit %d: %s", code, se.String())
	}
	a, err := gguf.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gguf.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	for _, ta := range a.Tensors {
		if tb := b.Tensor(ta.Name); tb == nil || !bytes.Equal(ta.Data, tb.Data) || !reflect.DeepEqual(ta.Dims, tb.Dims) {
			t.Fatalf("tensor %s differs after import and export", ta.Name)
		}
	}
	for k, v := range w.Meta {
		if got, _ := b.Get(k); !reflect.DeepEqual(got, v) {
			t.Errorf("metadata %s = %v (%T), want %v (%T)", k, got, got, v, v)
		}
	}
	if code := Main([]string{"import", "-format", "tflite", src}, &so, &se); code != exitUsage {
		t.Errorf("-format tflite: exit %d", code)
	}
	if code := Main([]string{"import", "-format", "onnx", src}, &so, &se); code != exitFailure || !strings.Contains(se.String(), "malformed") {
		t.Errorf("-format onnx on a GGUF file: exit %d, %s", code, se.String())
	}
}
