package main

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/qat"
)

// TestImportCalibrateEval runs the command-line path for a model from elsewhere: an ONNX file ->
// qatgo import -> qatgo export -data mnist (PTQ calibration, since the checkpoint has no quantizer
// state) -> qatgo eval -data mnist. The imported checkpoint must rebuild the model with the same
// parameters.
func TestImportCalibrateEval(t *testing.T) {
	dir := t.TempDir()
	src := qat.BNCNN(3)
	mp, err := onnx.FromModel(src, onnx.WriteOptions{Softmax: true})
	if err != nil {
		t.Fatal(err)
	}
	in, ckpt, qm := filepath.Join(dir, "m.onnx"), filepath.Join(dir, "m.ckpt"), filepath.Join(dir, "m.qm")
	if err := onnx.WriteFile(in, mp); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runMain("import", in, "-o", ckpt); code != 0 || !strings.Contains(out, "ends in Softmax") {
		t.Fatalf("import: code %d\n%s\n%s", code, out, errs)
	}
	ck, err := graph.LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	back, err := graph.ModelFromCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range src.Params() {
		// layer names come from the ONNX node names, which FromModel takes from the layers
		q := back.Param(p.Name)
		if q == nil {
			t.Fatalf("imported model lacks %s", p.Name)
		}
		a, b := p.Value.Data().([]float32), q.Value.Data().([]float32)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] = %v, want %v", p.Name, i, b[i], a[i])
			}
		}
	}
	code, out, errs := runMain("export", "-data", "mnist", "-calib-batches", "2", "-parity", "200", "-o", qm, ckpt)
	if code != 0 || !strings.Contains(errs, "PTQ calibration") {
		t.Fatalf("export: code %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(qm); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runMain("eval", "-data", "mnist", "-n", "100", qm); code != 0 || !strings.Contains(out, "accuracy") {
		t.Fatalf("eval: code %d\n%s\n%s", code, out, errs)
	}
	// The same 50 MNIST test images as an image folder (PNG, one folder per digit) evaluate the same.
	imgs := filepath.Join(dir, "imgs")
	test, err := mnist.LoadTest(mustLocate(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		cls := filepath.Join(imgs, fmt.Sprint(test.Labels[i]))
		os.MkdirAll(cls, 0o755)
		g := image.NewGray(image.Rect(0, 0, 28, 28))
		copy(g.Pix, test.Image(i))
		var buf bytes.Buffer
		if err := png.Encode(&buf, g); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(cls, fmt.Sprintf("%05d.png", i)), buf.Bytes(), 0o644)
	}
	_, want, _ := runMain("eval", "-data", "mnist", "-n", "50", qm)
	code, got, errs := runMain("eval", "-data", imgs, qm)
	acc := func(s string) string {
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "accuracy") {
				return strings.Fields(l)[1] + strings.Fields(l)[2]
			}
		}
		return "none"
	}
	// the folder reorders images by class, so compare the accuracy figures
	if code != 0 || acc(got) != acc(want) || acc(got) == "none" {
		t.Fatalf("eval on the image folder: code %d, %q vs MNIST %q\n%s", code, acc(got), acc(want), errs)
	}
	qdq := filepath.Join(dir, "m.onnx")
	if code, out, errs := runMain("export", "-format", "onnx", "-data", "mnist", "-calib-batches", "2", "-parity", "100", "-o", qdq, ckpt); code != 0 {
		t.Fatalf("export -format onnx: code %d\n%s\n%s", code, out, errs)
	}
	if mp, err := onnx.ReadFile(qdq); err != nil || len(mp.GetGraph().GetNode()) == 0 {
		t.Fatalf("QDQ file: %v", err)
	}
	if code, _, errs := runMain("export", "-o", qm, ckpt); code == 0 || !strings.Contains(errs, "-data") {
		t.Fatalf("export without quantizer state or -data: code %d, %s", code, errs)
	}
	bad := filepath.Join(dir, "bad.onnx")
	os.WriteFile(bad, []byte("not a model"), 0o644)
	if code, _, errs := runMain("import", bad); code == 0 || !strings.Contains(errs, "malformed") {
		t.Fatalf("import of garbage: code %d, %s", code, errs)
	}
}

func mustLocate(t *testing.T) string {
	t.Helper()
	d, err := mnist.Locate()
	if err != nil {
		t.Skipf("MNIST not found: %v", err)
	}
	return d
}
