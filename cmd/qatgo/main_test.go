package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

// brightestModel: uint8 image [2,3,1] -> identity dense 6->6 -> logits. The top class is the index
// of the brightest pixel, so the tests can predict the answer for any input.
func brightestModel(t *testing.T, dir string) string {
	b := qmodel.NewBuilder("brightest")
	b.SetLabels([]string{"p0", "p1", "p2", "p3", "p4", "p5"})
	x := b.Input("image", qmodel.Uint8, []int{2, 3, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	f := b.Reshape("flatten", q, []int{6})
	w := make([]int8, 36)
	for i := 0; i < 6; i++ {
		w[i*6+i] = 127
	}
	y := b.FullyConnected("dense", f, qmodel.Weights{Values: w, Shape: []int{6, 6}, Scales: []float32{1.0 / 127}}, nil, qmodel.ActNone, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	b.Output(b.Dequantize("logits", y))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "brightest.qm")
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// mnistLinear: uint8 [28,28,1] -> dense 784->10 (fixed pseudo-random weights).
func mnistLinear(t *testing.T, dir string) string {
	b := qmodel.NewBuilder("mnist-linear")
	x := b.Input("image", qmodel.Uint8, []int{28, 28, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	f := b.Reshape("flatten", q, []int{784})
	w := make([]int8, 7840)
	for i := range w {
		w[i] = int8((i*7919)%255 - 127)
	}
	y := b.FullyConnected("dense", f, qmodel.Weights{Values: w, Shape: []int{10, 784}, Scales: []float32{0.001}}, nil, qmodel.ActNone, quant.Params{Scale: 0.1})
	b.Output(b.Dequantize("logits", y))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "linear.qm")
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsageAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	model := brightestModel(t, dir)
	garbage := filepath.Join(dir, "garbage.qm")
	os.WriteFile(garbage, []byte("definitely not a model"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout on success (help included), in stderr otherwise
	}{
		{nil, exitUsage, "commands:"},
		{[]string{"help"}, exitOK, "inspect"},
		{[]string{"-h"}, exitOK, "commands:"},
		{[]string{"help", "run"}, exitOK, "usage: qatgo run"},
		{[]string{"help", "nope"}, exitUsage, "unknown command"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"inspect"}, exitUsage, "missing MODEL"},
		{[]string{"inspect", "-h"}, exitOK, "usage: qatgo inspect"},
		{[]string{"run", "-h"}, exitOK, "-invert"},
		{[]string{"eval", "-h"}, exitOK, "-batch"},
		{[]string{"bench", "-h"}, exitOK, "-time"},
		{[]string{"inspect", "-nosuchflag", model}, exitUsage, "flag provided but not defined"},
		{[]string{"inspect", model, "extra"}, exitUsage, "unexpected arguments"},
		{[]string{"inspect", filepath.Join(dir, "missing.qm")}, exitFailure, "no such file"},
		{[]string{"inspect", garbage}, exitFailure, "malformed model file"},
		{[]string{"run", model}, exitUsage, "missing INPUT"},
		{[]string{"run", "-k", "0", model, garbage}, exitUsage, "-k must be at least 1"},
		{[]string{"bench", "-batch", "0", model}, exitUsage, "-batch must be"},
		{[]string{"eval", "-n", "-1", model}, exitUsage, "-n must be"},
		{[]string{"eval", "-threads", "-1", model}, exitUsage, "-threads must be >= 0"},
		{[]string{"bench", "-threads", "-2", model}, exitUsage, "-threads must be >= 0"},
		{[]string{"eval", model}, exitFailure, "784"},
	} {
		code, o, e := runMain(tc.args...)
		got, quiet, stream := o, e, "stdout"
		if tc.code != exitOK {
			got, quiet, stream = e, o, "stderr"
		}
		if code != tc.code || !strings.Contains(got, tc.want) || quiet != "" {
			t.Errorf("qatgo %q: exit %d, want %d; %s lacks %q or the other stream is not empty:\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stream, tc.want, o, e)
		}
	}
}

func TestInspect(t *testing.T) {
	model := brightestModel(t, t.TempDir())
	code, o, e := runMain("inspect", "-tensors", model)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{"model     brightest", "input     image uint8[2 3 1] s=0.003922 z=0", "FullyConnected", "dense",
		"int8[6 6] (8 bit, 36 B)", "labels    p0 p1", "shift", "dense/weights", "smaller", "compute   36 multiply-accumulates per sample"} {
		if !strings.Contains(o, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, o)
		}
	}
}

func TestRunInputFormats(t *testing.T) {
	dir := t.TempDir()
	model := brightestModel(t, dir)
	pix := []byte{10, 20, 200, 30, 40, 50} // brightest is pixel 2; darkest pixel 0
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	img := image.NewGray(image.Rect(0, 0, 3, 2))
	copy(img.Pix, pix)
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, img)
	rgb := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i, v := range pix {
		rgb.Set(i%3, i/3, color.RGBA{v, v, v, 255})
	}
	var rgbBuf bytes.Buffer
	png.Encode(&rgbBuf, rgb)
	var p2 strings.Builder
	fmt.Fprintf(&p2, "P2\n# a comment\n3 2\n255\n")
	for _, v := range pix {
		fmt.Fprintf(&p2, "%d ", v)
	}
	big := image.NewGray(image.Rect(0, 0, 5, 5))
	var bigBuf bytes.Buffer
	png.Encode(&bigBuf, big)
	for _, tc := range []struct {
		name string
		file string
		args []string
		code int
		want string
	}{
		{"raw", write("x.raw", pix), nil, exitOK, "1     2      p2"},
		{"png gray", write("x.png", pngBuf.Bytes()), nil, exitOK, "1     2      p2"},
		{"png rgb", write("rgb.png", rgbBuf.Bytes()), nil, exitOK, "1     2      p2"},
		{"pgm P5", write("x.pgm", append([]byte("P5 3 2 255\n"), pix...)), nil, exitOK, "1     2      p2"},
		{"pgm P2", write("x2.pgm", []byte(p2.String())), nil, exitOK, "1     2      p2"},
		{"pgm maxval 15", write("x3.pgm", []byte("P2 3 2 15 0 1 15 2 3 4")), nil, exitOK, "1     2      p2"},
		{"raw starting like a PGM", write("p5.raw", []byte{'P', '5', 1, 2, 3, 4}), nil, exitOK, "1     0      p0"},
		{"invert", write("y.raw", pix), []string{"-invert"}, exitOK, "1     0      p0"},
		{"top-k", write("z.raw", pix), []string{"-k", "6"}, exitOK, "6     0      p0"},
		{"wrong raw size", write("short.raw", pix[:5]), nil, exitFailure, "has 5 bytes but the model input [2 3 1] needs 6"},
		{"wrong image size", write("big.png", bigBuf.Bytes()), nil, exitFailure, "image is 5x5, the model expects 3x2"},
		{"truncated png", write("bad.png", pngBuf.Bytes()[:20]), nil, exitFailure, "bad.png"},
		{"truncated pgm", write("bad.pgm", []byte("P5 3 2 255\n\x01\x02")), nil, exitFailure, "3x2 pixels expected, only 2 bytes left"},
		{"16-bit pgm", write("deep.pgm", []byte("P5 3 2 65535\n")), nil, exitFailure, "16-bit PGM is not supported"},
		{"missing input", filepath.Join(dir, "none.png"), nil, exitFailure, "no such file"},
		{"png bomb header", write("huge.png", hugePNGHeader(t)), nil, exitFailure, "image is 100000x100000, the model expects 3x2"},
	} {
		args := append(append([]string{"run"}, tc.args...), model, tc.file)
		code, o, e := runMain(args...)
		if code != tc.code || !strings.Contains(o+e, tc.want) {
			t.Errorf("%s: exit %d (want %d), output lacks %q:\n%s%s", tc.name, code, tc.code, tc.want, o, e)
		}
	}
	// A directory as the input: the error names it once.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, o, e := runMain("run", model, sub); code != exitFailure || strings.Count(o+e, sub) != 1 || !strings.Contains(e, "is a directory") {
		t.Errorf("run MODEL DIR: exit %d, output %q; want an error naming %s once", code, o+e, sub)
	}
}

func TestEvalMNIST(t *testing.T) {
	if _, err := mnist.Locate(); err != nil {
		t.Skipf("MNIST files not available: %v", err)
	}
	model := mnistLinear(t, t.TempDir())
	code, o, e := runMain("eval", "-n", "300", "-batch", "64", model)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{"accuracy", "/300 MNIST test images", "us/image (batch 64"} {
		if !strings.Contains(o, want) {
			t.Errorf("eval output lacks %q:\n%s", want, o)
		}
	}
	if code, _, e := runMain("eval", "-dir", t.TempDir(), model); code != exitFailure || !strings.Contains(e, "t10k-images") {
		t.Errorf("eval with an empty -dir: exit %d, %s", code, e)
	}
}

func TestBench(t *testing.T) {
	model := mnistLinear(t, t.TempDir())
	code, o, e := runMain("bench", "-time", "20ms", "-batch", "8", model)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{"batch 1  p50", "p99", "batch 8  ", "us/image", "GMAC/s", "7840 multiply-accumulates", "per op (batch 8, one thread)", "FullyConnected", "dense"} {
		if !strings.Contains(o, want) {
			t.Errorf("bench output lacks %q:\n%s", want, o)
		}
	}
}

// TestCommandTable shows how another file (e.g. the exporter's export.go) plugs a command in.
func TestCommandTable(t *testing.T) {
	ran := ""
	register(&command{
		name: "zz-test", args: "X", summary: "a test command",
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			v := fs.Bool("v", false, "verbose")
			return func(e *env, args []string) error {
				if err := needArgs(args, "X"); err != nil {
					return err
				}
				ran = fmt.Sprint(*v, args[0])
				return nil
			}
		},
	})
	defer delete(commands, "zz-test")
	if code, _, _ := runMain("zz-test", "-v", "arg"); code != exitOK || ran != "truearg" {
		t.Errorf("registered command: exit %d, ran %q", code, ran)
	}
	if _, o, _ := runMain("help"); !strings.Contains(o, "zz-test") {
		t.Errorf("help lacks the registered command:\n%s", o)
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate registration did not panic")
		}
	}()
	register(&command{name: "zz-test"})
}

// FuzzDecodePGM: the PGM reader never panics, and what it accepts has the size its header gives.
func FuzzDecodePGM(f *testing.F) {
	f.Add([]byte("P5 3 2 255\n\x00\x01\x02\x03\x04\x05"))
	f.Add([]byte("P2\n# comment\n3 2\n15\n0 1 2 3 4 15\n"))
	f.Add([]byte("P5 2 2 65535\n\x00\x00"))
	f.Add([]byte("P2 1 1 1 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodePGM(data)
		if err != nil {
			return
		}
		b := img.Bounds()
		if len(img.Pix) != b.Dx()*b.Dy() || b.Dx() < 1 || b.Dy() < 1 {
			t.Fatalf("image %v with %d pixels", b, len(img.Pix))
		}
	})
}

// hugePNGHeader returns the start of a PNG whose header declares a 100000x100000 image (its data
// is missing): the size check must come from the header, before any decoding.
func hugePNGHeader(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()[:33] // signature and IHDR chunk
	binary.BigEndian.PutUint32(b[16:], 100000)
	binary.BigEndian.PutUint32(b[20:], 100000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}
