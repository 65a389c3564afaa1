package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/gguf/llama"
)

// ggufFlags adds `qatgo export`'s -format and -type flags and returns the function that runs a
// GGUF export: it reports done = false when -format asks for the integer model instead.
//
//	qatgo export -format gguf CKPT -o MODEL.gguf [-type f32|f16|q8_0|q4_0]
func ggufFlags(fs *flag.FlagSet) func(e *env, args []string, out string) (done bool, err error) {
	format := fs.String("format", "qatgo", "output format: qatgo (integer model file), onnx (the integer model as a QDQ ONNX graph for onnxruntime) or gguf (llama.cpp/ollama; Llama-architecture language models)")
	typ := fs.String("type", "f32", "GGUF weight type with -format gguf: f32, f16, q8_0 or q4_0 (norms stay f32, the token embedding f32)")
	return func(e *env, args []string, out string) (bool, error) {
		switch strings.ToLower(*format) {
		case "qatgo", "qm", "", "onnx":
			return false, nil
		case "gguf":
		default:
			return true, usagef("-format %q: want qatgo, onnx or gguf", *format)
		}
		if len(args) < 1 {
			return true, usagef("missing CHECKPOINT")
		}
		// Allow flags after the checkpoint (qatgo export -format gguf CKPT -o X -type q8_0).
		if err := fs.Parse(args[1:]); err != nil {
			return true, usagef("%v", err)
		}
		if fs.NArg() > 0 {
			return true, usagef("unexpected arguments %q", fs.Args())
		}
		if o := fs.Lookup("o"); o != nil {
			out = o.Value.String()
		}
		return true, runExportGGUF(e, args[0], out, *typ)
	}
}

func runExportGGUF(e *env, ckpt, out, typName string) error {
	t, err := gguf.ParseTensorType(typName)
	if err != nil {
		return usagef("-type %q: want f32, f16, q8_0 or q4_0", typName)
	}
	if _, err := llama.FileType(t); err != nil {
		return usagef("-type %q: want f32, f16, q8_0 or q4_0", typName)
	}
	ck, err := loadCheckpoint(ckpt)
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(ckpt), filepath.Ext(ckpt))
	m, err := llama.LMFromCheckpoint(ck, name)
	if err != nil {
		return fmt.Errorf("%s: %w", ckpt, err)
	}
	w, err := llama.FromLM(m)
	if err != nil {
		return err
	}
	if w.Meta, err = llama.MetaOf(ck); err != nil { // an imported model's tokenizer
		return err
	}
	if out == "" {
		out = name + "-" + strings.ToLower(t.String()) + ".gguf"
	}
	if err := llama.WriteFile(out, w, llama.EncodeOptions{Type: t}); err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	c := w.Config
	fmt.Fprintf(e.stdout, "wrote %s: %d bytes, llama architecture (d=%d, %d layers, %d heads, ff %d, vocab %d, ctx %d), %v weights\n",
		out, fi.Size(), c.Dim, c.Layers, c.Heads, c.Hidden, c.Vocab, c.Ctx, t)
	for k := range ck.Tensors {
		if strings.HasPrefix(k, "quant/") {
			fmt.Fprintf(e.stderr, "qatgo export: note: the checkpoint's quantizer state is not used; %v uses llama.cpp's own rounding (train with llama.Preset to match it)\n", t)
			break
		}
	}
	return nil
}
