package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/qatgo/qatgo/data/preprocess"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx"
)

// MetaONNXSoftmax is the checkpoint metadata key that records that an imported ONNX model ended in
// a Softmax (the library's models output logits; export appends the integer Softmax).
const MetaONNXSoftmax = "onnx_softmax"

// runImport imports the float ONNX model at path (qatgo import -format onnx) into the checkpoint out
// (default: path with the extension .ckpt).
// The input normalisation (input.mean/input.std, package data/preprocess) comes from mean and std
// when set, else from the ONNX file's metadata_props, and is recorded in the checkpoint.
func runImport(e *env, path, out, mean, std string) error {
	m, info, err := onnx.ImportFile(path)
	if err != nil {
		return err
	}
	norm := map[string]string{}
	for _, k := range []string{preprocess.MetaMean, preprocess.MetaStd} {
		if v, ok := info.Meta[k]; ok {
			norm[k] = v
		}
	}
	if mean != "" {
		norm[preprocess.MetaMean] = mean
	}
	if std != "" {
		norm[preprocess.MetaStd] = std
	}
	var spec preprocess.Spec
	if len(norm) > 0 {
		if spec, err = preprocess.FromMeta(norm, m.Input, false); err != nil {
			return usagef("input normalisation: %v", err)
		}
	}
	if out == "" {
		out = strings.TrimSuffix(path, filepath.Ext(path)) + ".ckpt"
	}
	ck := &graph.Checkpoint{Meta: map[string]string{"source": filepath.Base(path), "onnx_producer": info.Producer,
		"onnx_opset": fmt.Sprint(info.Opset)}}
	if info.Softmax {
		ck.Meta[MetaONNXSoftmax] = "true"
	}
	if len(norm) > 0 {
		spec.SetMeta(ck.Meta)
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
	if len(norm) > 0 && !spec.Identity() {
		fmt.Fprintf(e.stdout, "input normalisation recorded: (pixel/255 - %v) / %v\n", spec.Mean, spec.Std)
	}
	fmt.Fprintf(e.stdout, "wrote %s\n", out)
	return nil
}
