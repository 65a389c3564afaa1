package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// hostileStrings is a model name / label / op name that would drive a terminal: clear the
// screen, set the window title, and a right-to-left override.
const hostileString = "evil\x1b[2J\x1b]0;pwned\x07\u202e"

// escapeModel writes a valid model whose name, producer, labels, metadata, tensor and op names
// carry terminal escape sequences.
func escapeModel(t *testing.T, dir string) string {
	t.Helper()
	b := qmodel.NewBuilder(hostileString)
	b.SetProducer(hostileString)
	b.SetLabels([]string{hostileString, "tab\there", "ok", "a b", "p4", "p5"})
	b.SetMeta(hostileString, hostileString)
	x := b.Input("image"+hostileString, qmodel.Uint8, []int{2, 3, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize"+hostileString, x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	f := b.Reshape("flatten", q, []int{6})
	w := make([]int8, 36)
	for i := 0; i < 6; i++ {
		w[i*6+i] = 127
	}
	y := b.FullyConnected("dense"+hostileString, f, qmodel.Weights{Values: w, Shape: []int{6, 6}, Scales: []float32{1.0 / 127}}, nil, qmodel.ActNone, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	b.Output(b.Dequantize("logits", y))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "escape.qm")
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestModelStringsEscaped (issue 14, item 5): strings from a model file never reach the terminal
// raw; they are printed escaped (strconv.Quote style).
func TestModelStringsEscaped(t *testing.T) {
	dir := t.TempDir()
	model := escapeModel(t, dir)
	raw := filepath.Join(dir, "x.raw")
	writeFile(t, raw, []byte{10, 20, 200, 30, 40, 50})
	for _, args := range [][]string{
		{"inspect", "-tensors", model},
		{"bench", "-time", "1ms", "-batch", "2", model},
		{"run", "-k", "6", model, raw},
	} {
		code, o, e := runMain(args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d: %s", args, code, e)
		}
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "\t"} {
			if strings.Contains(o+e, bad) {
				t.Errorf("%q: output contains the raw byte(s) %q:\n%s%s", args, bad, o, e)
			}
		}
		if !strings.Contains(o, `\x1b[2J`) {
			t.Errorf("%q: output lacks the escaped form of the name:\n%s", args, o)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestThreadsBounded (issue 14, item 3): -threads far above the machine's CPU count is a usage
// error with a clear message, not an out-of-memory crash.
func TestThreadsBounded(t *testing.T) {
	model := mnistLinear(t, t.TempDir())
	limit := fmt.Sprint(maxThreads())
	for _, cmd := range []string{"bench", "eval"} {
		code, o, e := runMain(cmd, "-threads", "1000000", model)
		if code != exitUsage || !strings.Contains(e, "-threads 1000000 is more than "+limit) || o != "" {
			t.Errorf("%s -threads 1000000: exit %d, stderr %q, stdout %q", cmd, code, e, o)
		}
	}
	// The bound itself is accepted.
	if code, _, e := runMain("bench", "-threads", limit, "-time", "1ms", "-batch", "16", model); code != exitOK {
		t.Errorf("bench -threads %s: exit %d: %s", limit, code, e)
	}
}

// writeIdx writes an idx file (big-endian magic and dimensions, then the bytes), uncompressed.
func writeIdx(t *testing.T, path string, magic uint32, dims []uint32, data []byte) {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(data)
	writeFile(t, path, b.Bytes())
}

// TestEvalUncompressedDir (issue 14, item 8): eval -dir reads uncompressed idx files under their
// unpacked names.
func TestEvalUncompressedDir(t *testing.T) {
	dir := t.TempDir()
	model := mnistLinear(t, dir)
	const n = 5
	px := make([]byte, n*784)
	for i := range px {
		px[i] = byte(i * 31)
	}
	writeIdx(t, filepath.Join(dir, "t10k-images-idx3-ubyte"), 0x803, []uint32{n, 28, 28}, px)
	writeIdx(t, filepath.Join(dir, "t10k-labels-idx1-ubyte"), 0x801, []uint32{n}, []byte{0, 1, 2, 3, 4})
	code, o, e := runMain("eval", "-dir", dir, model)
	if code != exitOK || !strings.Contains(o, "/5 MNIST test images") {
		t.Errorf("eval -dir with uncompressed files: exit %d\n%s%s", code, o, e)
	}
}

// poolBombFile writes a valid model of a few hundred bytes whose 2048x2048 max pool slides over a
// 4096x4096 input: about 1.8e13 window reads per sample (issue 14, item 1).
func poolBombFile(t *testing.T, dir string) string {
	t.Helper()
	b := qmodel.NewBuilder("pool-bomb")
	x := b.Input("image", qmodel.Uint8, []int{4096, 4096, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("q", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	p := b.MaxPool2D("p", q, qmodel.PoolOptions{KernelH: 2048, KernelW: 2048, StrideH: 1, StrideW: 1})
	b.Output(b.Dequantize("y", p))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bomb.qm")
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWorkBudgetFlag (issue 14, item 1): run, eval and bench refuse a model over the work budget
// (exit 1, an error naming the op and the flag), -max-work moves the budget, and inspect reports
// the work.
func TestWorkBudgetFlag(t *testing.T) {
	dir := t.TempDir()
	bomb := poolBombFile(t, dir)
	raw := filepath.Join(dir, "x.raw")
	writeFile(t, raw, make([]byte, 4096*4096))
	for _, args := range [][]string{{"run", bomb, raw}, {"eval", bomb}, {"bench", bomb}} {
		code, _, e := runMain(args...)
		if code != exitFailure || !strings.Contains(e, "work budget") || !strings.Contains(e, `MaxPool2D "p"`) || !strings.Contains(e, "-max-work") {
			t.Errorf("%q: exit %d: %s", args, code, e)
		}
	}
	linear := mnistLinear(t, dir) // 7840 MACs + 10 outputs + 784*2 quantize + 784*2 reshape + ...
	img := filepath.Join(dir, "digit.raw")
	writeFile(t, img, make([]byte, 784))
	if code, _, e := runMain("run", "-max-work", "1000", linear, img); code != exitFailure || !strings.Contains(e, "work budget of 1000") {
		t.Errorf("run -max-work 1000: exit %d: %s", code, e)
	}
	if code, _, e := runMain("run", "-max-work", "0", linear, img); code != exitOK {
		t.Errorf("run -max-work 0 (no limit): exit %d: %s", code, e)
	}
	if code, _, e := runMain("bench", "-max-work", "-3", linear); code != exitUsage || !strings.Contains(e, "-max-work") {
		t.Errorf("bench -max-work -3: exit %d: %s", code, e)
	}
	code, o, e := runMain("inspect", bomb)
	if code != exitOK || !strings.Contains(o, "over the runtime's default budget") {
		t.Errorf("inspect of the bomb: exit %d: %s%s", code, o, e)
	}
}
