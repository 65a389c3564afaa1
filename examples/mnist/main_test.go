package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/qat"
)

// TestFlagValidation (issue 14, item 4): every flag value that used to panic or be silently
// reinterpreted is an error before any work; the defaults and ordinary values pass.
func TestFlagValidation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for valid
	}{
		{nil, ""},
		{[]string{"-quick", "-epochs", "2", "-qat-epochs", "3", "-lr", "1e-3", "-bits", "8", "-batch", "32", "-train-limit", "100"}, ""},
		{[]string{"-bits", ""}, ""},
		{[]string{"-epochs", "-1"}, "-epochs must be >= 0, got -1"},
		{[]string{"-qat-epochs", "-2"}, "-qat-epochs must be >= 1, got -2"},
		{[]string{"-qat-epochs", "0"}, "-qat-epochs must be >= 1, got 0"},
		{[]string{"-lr", "-1"}, "-lr must be a finite number > 0, got -1"},
		{[]string{"-lr", "0"}, "-lr must be a finite number > 0, got 0"},
		{[]string{"-lr", "NaN"}, "-lr must be a finite number > 0, got NaN"},
		{[]string{"-qat-lr", "0"}, "-qat-lr must be a finite number > 0"},
		{[]string{"-qat-lr", "+Inf"}, "-qat-lr must be a finite number > 0"},
		{[]string{"-batch", "0"}, "-batch must be in [1,65536], got 0"},
		{[]string{"-batch", "1000000"}, "-batch must be in [1,65536]"},
		{[]string{"-train-limit", "-5"}, "-train-limit must be >= 0, got -5"},
		{[]string{"-test-limit", "-1"}, "-test-limit must be >= 0, got -1"},
		{[]string{"-calib", "0"}, "-calib must be >= 1, got 0"},
		{[]string{"-out", ""}, "-out must not be empty"},
		{[]string{"-bits", "8,3"}, `-bits: "3" is not 8, 4 or 2`},
		{[]string{"-conv", "fast"}, `-conv "fast": want convop or gorgonia`},
		{[]string{"-resume"}, "-resume needs -from"},
		{[]string{"-onnx", "-requant", "onnxruntime"}, ""},
		{[]string{"-requant", "tflite"}, `-requant "tflite": want default or onnxruntime`},
		{[]string{"-epochs", "2", "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
	} {
		_, err := parseFlags(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

// TestFromUnfinishedCheckpoint (issue 14, item 4): -from with a checkpoint that has fewer epochs
// than -epochs is refused with a message that says so (it used to be taken as the finished
// model); with -resume it is trained to the end.
func TestFromUnfinishedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	tr, err := qat.NewTrainer(qat.Classify(qat.BNCNN(1), nil), nil, qat.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr.Epoch = 1
	ckpt := filepath.Join(dir, "float.ckpt")
	if err := tr.SaveCheckpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	args := []string{"-from", ckpt, "-epochs", "2", "-bits", "", "-train-limit", "128", "-test-limit", "64", "-out", filepath.Join(dir, "out")}
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	err = run(o)
	if err == nil || !strings.Contains(err.Error(), "holds 1 of the 2 float epochs") || !strings.Contains(err.Error(), "-resume") {
		t.Fatalf("run with an unfinished checkpoint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "bn-results.md")); err == nil {
		t.Errorf("the refused run wrote results")
	}
	if o, err = parseFlags(append(args, "-resume")); err != nil {
		t.Fatal(err)
	}
	if err := run(o); err != nil {
		t.Fatalf("run -resume: %v", err)
	}
	res, err := os.ReadFile(filepath.Join(dir, "out", "bn-results.md"))
	if err != nil || !strings.Contains(string(res), "float epochs 2") {
		t.Errorf("results after -resume: %v\n%s", err, res)
	}
}
