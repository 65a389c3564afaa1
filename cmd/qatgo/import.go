package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx"
)

// MetaONNXSoftmax is the checkpoint metadata key that records that an imported ONNX model ended in
// a Softmax (the library's models output logits; export appends the integer Softmax).
const MetaONNXSoftmax = "onnx_softmax"

// runImport imports the float ONNX model at path (qatgo import -format onnx) into the checkpoint out
// (default: path with the extension .ckpt).
func runImport(e *env, path, out string) error {
	m, info, err := onnx.ImportFile(path)
	if err != nil {
		return err
	}
	if out == "" {
		out = strings.TrimSuffix(path, filepath.Ext(path)) + ".ckpt"
	}
	ck := &graph.Checkpoint{Meta: map[string]string{"source": filepath.Base(path), "onnx_producer": info.Producer,
		"onnx_opset": fmt.Sprint(info.Opset)}}
	if info.Softmax {
		ck.Meta[MetaONNXSoftmax] = "true"
	}
	m.SaveState(ck)
	if err := graph.SaveCheckpoint(out, ck); err != nil {
		return err
	}
	params := 0
	for _, p := range m.Params() {
		params += p.Value.Shape().TotalSize()
	}
	fmt.Fprintf(e.stdout, "imported %s (opset %d, producer %q): %d layers, %d parameters, input %v, output %v\n",
		path, info.Opset, info.Producer, len(m.Layers), params, m.Input, m.OutShape())
	if info.Softmax {
		fmt.Fprintf(e.stdout, "the model ends in Softmax: recorded in the checkpoint (export appends an integer Softmax)\n")
	}
	fmt.Fprintf(e.stdout, "wrote %s\n", out)
	return nil
}
