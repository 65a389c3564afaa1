package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/qatgo/qatgo/gguf/llama"
	"github.com/qatgo/qatgo/graph"
)

func init() {
	register(&command{
		name:    "import",
		args:    "MODEL",
		summary: "read a model from another format (GGUF, ONNX) into a qatgo checkpoint",
		detail: `-format gguf (the default) reads a llama-architecture GGUF file (F32, F16, Q8_0 or Q4_0
tensors, dequantized to float32) into a language-model checkpoint (-o) that qatgo trains, quantizes
and exports: qatgo export -format gguf CKPT writes it back for llama.cpp, keeping the file's
tokenizer metadata. Grouped-query attention (fewer key/value heads than heads) is not supported.

-format onnx (the default for a .onnx file) reads a float ONNX model (opset 13 to 21, NCHW: Conv
incl. grouped and depthwise, Gemm, MatMul, Add, Relu, Clip as ReLU6, MaxPool, AveragePool,
GlobalAveragePool, BatchNormalization, Flatten, Reshape to 2-D, Softmax at the end) into a
self-describing checkpoint for PTQ (qatgo export CKPT -data mnist), QAT and export. Anything the
library cannot express is an error naming the operator, the node and the opset. The input
normalisation the model expects, (pixel/255 - mean[c]) / std[c] per channel, is read from the
file's metadata_props input.mean/input.std (as qatgo writes them) or given with -mean and -std
(one value or one per channel, comma-separated); export, eval and calibration apply it.`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			format := fs.String("format", "", "input format: gguf or onnx (default: onnx for a .onnx file, else gguf)")
			out := fs.String("o", "", "output checkpoint (default: MODEL with the extension .ckpt)")
			mean := fs.String("mean", "", "onnx: input normalisation means of pixel/255, one or one per channel (default: the file's input.mean metadata, else 0)")
			std := fs.String("std", "", "onnx: input normalisation standard deviations (default: the file's input.std metadata, else 1)")
			return func(e *env, args []string) error {
				if len(args) > 1 { // allow flags after MODEL
					if err := fs.Parse(args[1:]); err != nil {
						return usagef("%v", err)
					}
					args = append(args[:1], fs.Args()...)
				}
				if err := needArgs(args, "MODEL"); err != nil {
					return err
				}
				f := strings.ToLower(*format)
				if f == "" {
					f = "gguf"
					if strings.HasSuffix(strings.ToLower(args[0]), ".onnx") {
						f = "onnx"
					}
				}
				switch f {
				case "onnx":
					return runImport(e, args[0], *out, *mean, *std)
				case "gguf":
					if *mean != "" || *std != "" {
						return usagef("-mean and -std are for ONNX image models")
					}
				default:
					return usagef("-format %q: want gguf or onnx", *format)
				}
				return runImportGGUF(e, args[0], *out)
			}
		},
	})
}

func runImportGGUF(e *env, path, out string) error {
	w, err := llama.ReadFile(path)
	if err != nil {
		return err
	}
	name := w.Name
	if name == "" {
		name = "gguf-import"
	}
	m, err := w.LM(name)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c := &graph.Checkpoint{Meta: map[string]string{"source": path}}
	m.SaveState(c)
	if err := llama.PutMeta(c, w); err != nil {
		return err
	}
	if out == "" {
		out = strings.TrimSuffix(path, ".gguf") + ".ckpt"
	}
	if err := graph.SaveCheckpoint(out, c); err != nil {
		return err
	}
	cf := w.Config
	fmt.Fprintf(e.stdout, "wrote %s: LM %q (d=%d, %d layers, %d heads, ff %d, vocab %d, ctx %d), %d parameters\n",
		out, name, cf.Dim, cf.Layers, cf.Heads, cf.Hidden, cf.Vocab, cf.Ctx, m.NumParams())
	return nil
}
