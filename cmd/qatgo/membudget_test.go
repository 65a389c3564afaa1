package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// bigInputModel writes a valid model of a few hundred bytes whose float32 input has 16M elements
// (64 MiB per sample): at the default -batch 256 its inputs alone take 16 GiB (issue 14, item 2).
func bigInputModel(t *testing.T, dir string) string {
	t.Helper()
	b := qmodel.NewBuilder("big-input")
	x := b.Input("x", qmodel.Float32, []int{4096, 4096, 1}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.01})
	b.Output(b.Dequantize("y", q))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "big-input.qm")
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// bigOutputModel writes a valid MNIST-shaped model (uint8 28x28x1 input) whose 1x1 convolution
// to 21399 channels gives a 16.8M-element output (about 84 MiB of buffers per sample), from
// about 11 KB of int4 weights: eval's batch buffers are the risk there.
func bigOutputModel(t *testing.T, dir string) string {
	t.Helper()
	const c = 21399
	b := qmodel.NewBuilder("big-output")
	x := b.Input("image", qmodel.Uint8, []int{28, 28, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("q", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	w := qmodel.Weights{Values: make([]int8, c), Shape: []int{c, 1, 1, 1}, Scales: []float32{0.01}, Int4: true}
	y := b.Conv2D("wide", q, w, nil, qmodel.Conv2DOptions{}, quant.Params{Scale: 0.1})
	b.Output(b.Dequantize("logits", y))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "big-output.qm")
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBenchBatchMemoryBudget (issue 14, item 2): bench at its default -batch 256 on a small model
// with a 64 MiB input used to ask for 16 GiB and die with "fatal error: out of memory" (exit 2).
// Now the batch buffers are checked against -max-memory before anything is allocated: bench lowers
// the batch and says so, and a budget that does not hold one sample is a clear error with exit 1.
func TestBenchBatchMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	model := bigInputModel(t, dir)
	if fi, err := os.Stat(model); err != nil || fi.Size() > 1024 {
		t.Fatalf("the model should be small: %v %v", fi.Size(), err)
	}
	// At the default budget (1 GiB) the batch is lowered to a handful of samples.
	md, err := infer.LoadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	var note strings.Builder
	b, err := fitBatch(&env{stdout: io.Discard, stderr: &note}, md, 256, infer.SessionOptions{Threads: 2}, defaultMaxMemoryMiB<<20)
	if err != nil || b < 1 || b > 8 || !strings.Contains(note.String(), "note: -batch 256 needs") {
		t.Errorf("fitBatch at the default budget: batch %d, %v, %q", b, err, note.String())
	}
	if need := md.InputBytes(256); need != 256<<26 {
		t.Errorf("InputBytes(256) = %d, want 16 GiB", need)
	}
	// The command at its default -batch 256, with a budget of 300 MiB (one sample of 64 MiB input,
	// 64 MiB output and 80 MiB of activations fits, two do not) to keep the test short.
	code, o, e := runMain("bench", "-time", "1ms", "-max-memory", "300", model)
	if code != exitOK || !strings.Contains(e, "note: -batch 256 needs") || !strings.Contains(e, "memory budget of 300 MiB (-max-memory): using batch 1\n") {
		t.Fatalf("bench at the default batch: exit %d\nstdout %s\nstderr %s", code, o, e)
	}
	if strings.Contains(o, "batch 256") {
		t.Errorf("bench ran batch 256:\n%s", o)
	}
	code, o, e = runMain("bench", "-time", "1ms", "-max-memory", "100", model)
	if code != exitFailure || !strings.Contains(e, "more than the memory budget of 100 MiB") || !strings.Contains(e, "-max-memory") || o != "" {
		t.Errorf("bench with a budget below one sample: exit %d\nstdout %s\nstderr %s", code, o, e)
	}
	if code, _, e := runMain("bench", "-max-memory", "0", model); code != exitUsage || !strings.Contains(e, "-max-memory must be") {
		t.Errorf("-max-memory 0: exit %d: %s", code, e)
	}
}

// TestEvalBatchMemoryBudget (issue 14, item 2): eval lowers its batch to the memory budget
// (the result does not depend on the batch) and refuses a model that does not fit at batch 1.
func TestEvalBatchMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	model := bigOutputModel(t, dir)
	const n = 4
	px := make([]byte, n*784)
	writeIdx(t, filepath.Join(dir, "t10k-images-idx3-ubyte"), 0x803, []uint32{n, 28, 28}, px)
	writeIdx(t, filepath.Join(dir, "t10k-labels-idx1-ubyte"), 0x801, []uint32{n}, []byte{0, 1, 2, 3})
	code, o, e := runMain("eval", "-dir", dir, "-max-memory", "200", model)
	if code != exitOK || !strings.Contains(e, "note: -batch 4 needs") || !strings.Contains(e, "using batch 1\n") || !strings.Contains(o, "/4 MNIST test images") {
		t.Errorf("eval over the budget: exit %d\nstdout %s\nstderr %s", code, o, e)
	}
	code, o, e = runMain("eval", "-dir", dir, "-max-memory", "50", model)
	if code != exitFailure || !strings.Contains(e, "more than the memory budget of 50 MiB") {
		t.Errorf("eval with a budget below one sample: exit %d\nstdout %s\nstderr %s", code, o, e)
	}
}
