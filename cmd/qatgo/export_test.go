package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// noise28 is a random 28x28 image set for calibrating quantizers without MNIST.
type noise28 struct{}

func (noise28) Len() int { return 64 }

func (noise28) Batch(idx []int, x []float32, y []int) {
	for b, i := range idx {
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		for j := 0; j < 784; j++ {
			x[b*784+j] = rng.Float32()
		}
		y[b] = i % 10
	}
}

// calibratedCheckpoint writes a checkpoint of the ggml CNN (untrained weights, W8A8 observers
// calibrated on noise) in the trainer's format.
func calibratedCheckpoint(t *testing.T, dir string) string {
	m := qat.GGMLCNN(1)
	p, err := qat.Calibrate(m, qat.W8A8(), noise28{}, 2, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &graph.Checkpoint{Meta: map[string]string{"model": m.Name}}
	m.SaveState(c)
	p.SaveState(c)
	path := filepath.Join(dir, "ck.bin")
	if err := graph.SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	ck := calibratedCheckpoint(t, dir)
	out := filepath.Join(dir, "m.qm")
	parity := "0"
	if _, err := mnist.Locate(); err == nil {
		parity = "64"
	}
	code, stdout, stderr := runMain("export", "-qconfig", "w8a8", "-uint8", "-parity", parity, "-o", out, ck)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) || (parity != "0" && !strings.Contains(stdout, "prediction agreement")) {
		t.Errorf("stdout:\n%s", stdout)
	}
	md, err := infer.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if md.InputType() != qmodel.Uint8 || md.InputSize() != 784 || len(md.Labels()) != 10 {
		t.Errorf("model input %v x %d, %d labels", md.InputType(), md.InputSize(), len(md.Labels()))
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"export"}, exitUsage, "missing CHECKPOINT"},
		{[]string{"export", filepath.Join(dir, "missing.bin")}, exitFailure, "no such file"},
		{[]string{"export", "-parity", "0", "-qconfig", "w4a4", "-o", filepath.Join(dir, "x.qm"), ck}, exitFailure, `quantizer "input": checkpoint was trained with method observed`},
		{[]string{"export", "-model", "nope", ck}, exitUsage, `unknown model "nope"`},
		{[]string{"export", "-qconfig", "w9", ck}, exitUsage, "unknown preset"},
		{[]string{"export", "-parity", "-1", ck}, exitUsage, "-parity"},
		{[]string{"export", "-qconfig", "w8a8", "-min-agree", "1.5", ck}, exitUsage, "-min-agree must be in [0,1]"},
	} {
		code, _, stderr := runMain(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ggml-cnn-w4a4-lsq.qm")); err == nil {
		t.Error("a failed export wrote a file")
	}

	// Without -qconfig and -model the checkpoint's own (the calibrated observed twin, not a
	// plain preset) are used and the model equals the one exported with the explicit preset.
	auto := filepath.Join(dir, "auto.qm")
	code, stdout, stderr = runMain("export", "-uint8", "-parity", "0", "-o", auto, ck)
	if code != exitOK || strings.Contains(stderr, "warning") {
		t.Fatalf("export with the checkpoint's QConfig: exit %d\n%s\n%s", code, stdout, stderr)
	}
	ma, mb := decodeFile(t, auto), decodeFile(t, out)
	if ma.Meta["qconfig"] != "W8A8-observed" || len(ma.Tensors) != len(mb.Tensors) {
		t.Fatalf("auto export: qconfig %q, %d tensors (-qconfig w8a8: %d)", ma.Meta["qconfig"], len(ma.Tensors), len(mb.Tensors))
	}
	for i := range ma.Tensors {
		if !bytes.Equal(ma.Tensors[i].Data, mb.Tensors[i].Data) {
			t.Errorf("tensor %s differs between the auto and the -qconfig w8a8 export", ma.Tensors[i].Name)
		}
	}

	// A -qconfig other than the QConfig the checkpoint records gets a warning.
	code, _, stderr = runMain("export", "-qconfig", "w8a8", "-parity", "0", "-o", filepath.Join(dir, "w.qm"), ck)
	if code != exitOK || !strings.Contains(stderr, "warning: the checkpoint was trained with QConfig W8A8-observed, exporting with W8A8") {
		t.Errorf("mismatched QConfig: exit %d, stderr %q", code, stderr)
	}

	// A checkpoint with a per-layer override exports with it, without flags.
	m := qat.GGMLCNN(2)
	w8 := qat.Spec{Bits: 8, Method: fakequant.Observed, Momentum: 1}
	a8 := qat.Spec{Bits: 8, Method: fakequant.Observed}
	cfg := qat.W4A4Observed().With("conv1", qat.Override{Weight: &w8, Act: &a8})
	p, err := qat.Calibrate(m, cfg, noise28{}, 2, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &graph.Checkpoint{}
	m.SaveState(c)
	p.SaveState(c)
	ovr := filepath.Join(dir, "override.bin")
	if err := graph.SaveCheckpoint(ovr, c); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runMain("export", "-parity", "0", "-o", filepath.Join(dir, "o.qm"), ovr)
	if code != exitOK {
		t.Fatalf("export with overrides: exit %d\n%s\n%s", code, stdout, stderr)
	}
	om := decodeFile(t, filepath.Join(dir, "o.qm"))
	// conv1 (overridden) keeps 8-bit weights, conv2 and fc are 4-bit.
	dt := map[string]qmodel.DType{}
	for _, tn := range om.Tensors {
		if strings.HasSuffix(tn.Name, "/weights") {
			dt[tn.Name] = tn.DType
		}
	}
	if len(dt) != 3 {
		t.Fatalf("weights %v", dt)
	}
	for name, d := range dt {
		if want := qmodel.Int4; (d == qmodel.Int8) != strings.HasPrefix(name, "conv1") || (d != qmodel.Int8 && d != want) {
			t.Errorf("%s: %v", name, d)
		}
	}
}

func decodeFile(t *testing.T, path string) *qmodel.Model {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := qmodel.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExportOtherFormat: given a file that is not a checkpoint, export says what the file seems to
// be, what it expects and which command reads that file.
func TestExportOtherFormat(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gg := write("m.gguf", append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 24)...))
	ox := write("m.onnx", []byte("\x08\x08\x12\x07pytorch"))
	qm := write("m.qm", append([]byte(qmodel.Magic), make([]byte, 8)...))
	txt := write("notes.txt", []byte("hello"))
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"export", gg}, []string{"a GGUF file", `not a qatgo checkpoint (which starts with "QATGOCK1")`, "qatgo import " + gg + " -o CKPT"}},
		{[]string{"export", "-format", "gguf", gg}, []string{"a GGUF file", "qatgo import " + gg}},
		{[]string{"export", ox}, []string{"ONNX", "qatgo import " + ox}},
		{[]string{"export", qm}, []string{"a qatgo integer model file (.qm)", "already exported"}},
		{[]string{"export", txt}, []string{`starts with "hello", not a qatgo checkpoint`}},
	} {
		code, _, stderr := runMain(tc.args...)
		if code != exitFailure {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitFailure)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, stderr, w)
			}
		}
	}
	if strings.Contains(func() string { _, _, e := runMain("export", txt); return e }(), "qatgo import") {
		t.Error("a file of unknown format gets the import hint")
	}
	// A directory instead of a model: the path is named once.
	code, _, stderr := runMain("eval", dir)
	if code != exitFailure || strings.Count(stderr, dir) != 1 || !strings.Contains(stderr, "is a directory") {
		t.Errorf("eval DIR: exit %d, stderr %q; want the directory named once", code, stderr)
	}
}
