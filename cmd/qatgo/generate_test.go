package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qmodel"
)

// lmConfig is a tiny byte-level LM: context 32.
var lmConfig = lmref.Config{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 32, Bits: 8}

// writeLM writes a random LM of config c to dir/name and returns its path.
func writeLM(t *testing.T, dir, name string, c lmref.Config) string {
	t.Helper()
	m, err := lmref.RandomLM(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := qmodel.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// greedyBytes generates n bytes greedily after prompt straight on the runtime.
func greedyBytes(t *testing.T, path string, prompt []byte, n int) []byte {
	t.Helper()
	lm, err := infer.LoadLMFile(path)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]int, len(prompt))
	for i, b := range prompt {
		toks[i] = int(b)
	}
	s := lm.NewSession()
	l, err := s.Prefill(toks)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; i < n; i++ {
		tok := infer.Argmax(l)
		out = append(out, byte(tok))
		if i+1 < n {
			if l, err = s.Decode(tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func runMainIn(stdin []byte, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = MainIO(args, bytes.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	model := writeLM(t, dir, "lm.qm", lmConfig)
	ok := func(stdin []byte, args ...string) string {
		t.Helper()
		code, o, e := runMainIn(stdin, args...)
		if code != exitOK {
			t.Fatalf("qatgo %q: exit %d: %s", args, code, e)
		}
		return o
	}
	// Greedy: the runtime's argmax text; stdin gives the same; the whole context is usable.
	want := greedyBytes(t, model, []byte("func "), 28)
	if got := ok(nil, "generate", "-temp", "0", "-n", "28", "-prompt", "func ", model); got != string(want) {
		t.Errorf("greedy: %q, want %q", got, want)
	}
	if got := ok([]byte("func "), "generate", "-temp", "0", "-n", "28", "-prompt", "-", model); got != string(want) {
		t.Errorf("greedy from stdin: %q, want %q", got, want)
	}
	if got := ok(nil, "generate", "-temp", "0", "-n", "28", "-echo", "-prompt", "func ", model); got != "func "+string(want) {
		t.Errorf("-echo: %q", got)
	}
	// top-k 1 is greedy at any temperature.
	if got := ok(nil, "generate", "-temp", "3", "-topk", "1", "-n", "28", "-prompt", "func ", model); got != string(want) {
		t.Errorf("top-k 1: %q, want %q", got, want)
	}
	// Any bytes as prompt (NUL, invalid UTF-8, escapes).
	raw := []byte{0, 0xff, 0xfe, '\n', 0x1b, '[', '2', 'J', 0x80}
	if got := ok(raw, "generate", "-temp", "0", "-n", "8", "-prompt", "-", model); got != string(greedyBytes(t, model, raw, 8)) {
		t.Errorf("binary prompt: %q", got)
	}
	// An empty prompt starts after a newline.
	if got := ok(nil, "generate", "-temp", "0", "-n", "10", model); got != string(greedyBytes(t, model, []byte("\n"), 10)) {
		t.Errorf("empty prompt: %q", got)
	}
	if got := ok(nil, "generate", "-temp", "0", "-n", "10", "-prompt", "-", model); got != string(greedyBytes(t, model, []byte("\n"), 10)) {
		t.Errorf("empty stdin prompt: %q", got)
	}
	// -n 0 prints nothing.
	if got := ok(nil, "generate", "-n", "0", "-prompt", "abc", model); got != "" {
		t.Errorf("-n 0 printed %q", got)
	}
	// Sampling is reproducible with -seed and depends on it.
	a := ok(nil, "generate", "-temp", "1", "-topk", "0", "-seed", "5", "-n", "30", "-prompt", "x", model)
	b := ok(nil, "generate", "-temp", "1", "-topk", "0", "-seed", "5", "-n", "30", "-prompt", "x", model)
	c := ok(nil, "generate", "-temp", "1", "-topk", "0", "-seed", "6", "-n", "30", "-prompt", "x", model)
	if len(a) != 30 || a != b || a == c {
		t.Errorf("seeded sampling: seed 5 %q and %q, seed 6 %q", a, b, c)
	}
	// The sliding window runs past the context.
	if got := ok(nil, "generate", "-slide", "-n", "200", "-prompt", "x", model); len(got) != 200 {
		t.Errorf("-slide -n 200 gave %d bytes", len(got))
	}
	long := strings.Repeat("ab", 40) // 80 bytes > context 32
	if got := ok(nil, "generate", "-slide", "-keep", "8", "-temp", "0", "-n", "4", "-prompt", long, model); got != string(greedyBytes(t, model, []byte(long[72:]), 4)) {
		t.Errorf("-slide with a long prompt: %q", got)
	}
	if _, _, e := runMainIn(nil, "generate", "-stats", "-n", "5", "-prompt", "x", model); !strings.Contains(e, "bytes/s") {
		t.Errorf("-stats printed %q", e)
	}
}

// TestGenerateBadInput: every bad input is a clear error with exit 1 or 2, nothing on stdout.
func TestGenerateBadInput(t *testing.T) {
	dir := t.TempDir()
	model := writeLM(t, dir, "lm.qm", lmConfig)
	c64 := lmConfig
	c64.Vocab = 64
	small := writeLM(t, dir, "v64.qm", c64)
	cnn := brightestModel(t, dir)
	garbage := filepath.Join(dir, "garbage.qm")
	writeFile(t, garbage, []byte("not a model"))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"generate"}, exitUsage, "missing MODEL"},
		{[]string{"generate", "-n", "-1", model}, exitUsage, "-n must be >= 0"},
		{[]string{"generate", "-temp", "-1", model}, exitUsage, "-temp must be"},
		{[]string{"generate", "-temp", "NaN", model}, exitUsage, "-temp must be"},
		{[]string{"generate", "-temp", "+Inf", model}, exitUsage, "-temp must be"},
		{[]string{"generate", "-topk", "-3", model}, exitUsage, "-topk must be"},
		{[]string{"generate", "-seed", "-2", model}, exitUsage, "-seed must be"},
		{[]string{"generate", "-keep", "-1", model}, exitUsage, "-keep must be"},
		{[]string{"generate", "-slide", "-keep", "32", model}, exitUsage, "below the model's context length 32"},
		{[]string{"generate", "-threads", "100000", model}, exitUsage, "-threads 100000 is more than"},
		{[]string{"generate", "-n", "100", "-prompt", "x", model}, exitFailure, "use -n 32 or less, or -slide"},
		{[]string{"generate", "-n", "1000000000000", "-prompt", "x", model}, exitFailure, "context positions"},
		{[]string{"generate", "-n", "0", "-prompt", strings.Repeat("y", 33), model}, exitFailure, "the prompt is 33 bytes; the model's context holds 32"},
		{[]string{"generate", "-prompt", "x", cnn}, exitFailure, "not a language model"},
		{[]string{"generate", "-prompt", "x", small}, exitFailure, "vocabulary of 64 tokens"},
		{[]string{"generate", garbage}, exitFailure, "malformed model file"},
		{[]string{"generate", filepath.Join(dir, "missing.qm")}, exitFailure, "no such file"},
		{[]string{"generate", "-max-work", "1000", model}, exitFailure, "work"},
		{[]string{"run", model, garbage}, exitFailure, "is a language model: run classifies images; use qatgo generate, eval -text or bench"},
	} {
		code, o, e := runMain(tc.args...)
		if code != tc.code || !strings.Contains(e, tc.want) || o != "" || strings.Contains(e, "panic") {
			t.Errorf("qatgo %q: exit %d, want %d; stderr lacks %q or stdout is not empty:\nstdout: %q\nstderr: %s", tc.args, code, tc.code, tc.want, o, e)
		}
	}
	// A prompt on stdin beyond the 16 MiB bound is refused without being kept.
	huge := make([]byte, maxPromptBytes+1)
	if code, o, e := runMainIn(huge, "generate", "-prompt", "-", model); code != exitFailure || o != "" || !strings.Contains(e, "longer than 16777216 bytes") {
		t.Errorf("huge stdin prompt: exit %d: %s", code, e)
	}
}
