package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/infer/textgen"
)

// someText returns n bytes of pseudo-random Go-like text.
func someText(n int, seed uint64) []byte {
	words := []string{"func", " ", "(", ")", "{", "}", "\n", "return", "err", "nil", "if", ":=", "x", "\t", "for", "range"}
	r := rand.New(rand.NewPCG(seed, 3))
	var b []byte
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b[:n]
}

// wantBits is the bits per byte the runtime gives b (textgen.ScoreTokens on one session).
func wantBits(t *testing.T, model string, b []byte) (string, int) {
	t.Helper()
	lm, err := infer.LoadLMFile(model)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]int, len(b))
	for i, c := range b {
		toks[i] = int(c)
	}
	sc, err := textgen.ScoreTokens(lm.NewSession(), toks)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("bits/byte %.4f (perplexity %.4f", sc.BitsPerToken(), sc.Perplexity()), sc.Tokens
}

func TestEvalText(t *testing.T) {
	dir := t.TempDir()
	model := writeLM(t, dir, "lm.qm", lmConfig)
	file := filepath.Join(dir, "a.txt")
	defer func(s int) { evalSegment = s }(evalSegment)
	evalSegment = 1000       // 992 bytes (31 windows of 32) per segment
	big := someText(5000, 1) // several segments
	writeFile(t, file, big)
	small := filepath.Join(dir, "small.txt")
	writeFile(t, small, big[:2000])
	for _, c := range []struct {
		args []string
		text []byte
	}{
		{[]string{"-text", file}, big},
		{[]string{"-text", file, "-n", "100"}, big[:100]},
		{[]string{"-text", small, "-split", "val"}, big[1800:2000]}, // a single file is cut at 90%
		{[]string{"-text", small, "-split", "train", "-batch", "5"}, big[:1800]},
		{[]string{"-text", file, "-max-bytes", "1000"}, big[:1000]},
	} {
		code, o, e := runMain(append(append([]string{"eval"}, c.args...), model)...)
		want, n := wantBits(t, model, c.text)
		if code != exitOK || !strings.Contains(o, want) || !strings.Contains(o, fmt.Sprintf("%d predicted", n)) {
			t.Errorf("eval %q: exit %d, want %q and %d predicted:\n%s%s", c.args, code, want, n, o, e)
		}
	}
	// A folder: hidden files and binary files are skipped, the rest joined with newlines.
	folder := filepath.Join(dir, "corpus")
	os.MkdirAll(filepath.Join(folder, "sub"), 0o755)
	writeFile(t, filepath.Join(folder, "one.go"), someText(300, 2))
	writeFile(t, filepath.Join(folder, "sub", "two.txt"), someText(200, 3))
	writeFile(t, filepath.Join(folder, ".hidden"), someText(200, 4))
	writeFile(t, filepath.Join(folder, "bin.dat"), []byte{1, 0, 2, 3})
	code, o, e := runMain("eval", "-text", folder, model)
	joined := append(append(someText(300, 2), '\n'), someText(200, 3)...)
	if want, _ := wantBits(t, model, joined); code != exitOK || !strings.Contains(o, want) || !strings.Contains(o, "2 files, cut at 90% of the bytes") || !strings.Contains(o, "500 predicted") {
		t.Errorf("folder: exit %d, want %q:\n%s%s", code, want, o, e)
	}
	// goroot: the Go standard library source the tinyllm example trains on.
	code, o, e = runMain("eval", "-text", "goroot", "-max-bytes", "20000", "-split", "val", model)
	if code != exitOK || !strings.Contains(o, "text      Go standard library source, split val (") {
		t.Errorf("-text goroot: exit %d:\n%s%s", code, o, e)
	}
	// A prefill batch over the memory budget is lowered, with a note.
	c256 := lmConfig
	c256.Ctx = 512
	m256 := writeLM(t, dir, "ctx512.qm", c256)
	code, o, e = runMain("eval", "-text", file, "-n", "600", "-batch", "512", "-max-memory", "1", m256)
	if want, _ := wantBits(t, m256, big[:600]); code != exitOK || !strings.Contains(e, "note: a prefill batch of 512 rows needs") || !strings.Contains(o, want) {
		t.Errorf("-max-memory 1: exit %d:\n%s%s", code, o, e)
	}
}

func TestEvalTextBadInput(t *testing.T) {
	dir := t.TempDir()
	model := writeLM(t, dir, "lm.qm", lmConfig)
	c64 := lmConfig
	c64.Vocab = 64
	small := writeLM(t, dir, "v64.qm", c64)
	cnn := brightestModel(t, dir)
	file := filepath.Join(dir, "a.txt")
	writeFile(t, file, someText(100, 1))
	one := filepath.Join(dir, "one.txt")
	writeFile(t, one, []byte("x"))
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "-text", file, "-data", "mnist", model}, exitUsage, "-data and -dir are for image models"},
		{[]string{"eval", "-text", file, "-split", "test", model}, exitUsage, "-split must be all, train or val"},
		{[]string{"eval", "-text", file, "-max-bytes", "0", model}, exitUsage, "-max-bytes must be >= 1"},
		{[]string{"eval", "-text", file, "-batch", "0", model}, exitUsage, "-batch must be"},
		{[]string{"eval", "-text", file, "-threads", "100000", model}, exitUsage, "-threads 100000 is more than"},
		{[]string{"eval", "-text", file, cnn}, exitFailure, "not a language model"},
		{[]string{"eval", "-text", file, small}, exitFailure, "vocabulary of 64 tokens"},
		{[]string{"eval", model}, exitFailure, "is a language model: evaluate it on text with -text"},
		{[]string{"eval", "-data", dir, model}, exitFailure, "is a language model"},
		{[]string{"eval", "-text", one, model}, exitFailure, "at least 2 are needed"},
		{[]string{"eval", "-text", file, "-n", "1", model}, exitFailure, "at least 2 are needed"},
		{[]string{"eval", "-text", empty, model}, exitFailure, "no usable text files"},
		{[]string{"eval", "-text", filepath.Join(dir, "missing"), model}, exitFailure, "no such file"},
		{[]string{"eval", "-text", file, "-max-work", "1000", model}, exitFailure, "work"},
	} {
		code, o, e := runMain(tc.args...)
		if code != tc.code || !strings.Contains(e, tc.want) || o != "" || strings.Contains(e, "panic") {
			t.Errorf("qatgo %q: exit %d, want %d; stderr lacks %q or stdout is not empty:\nstdout: %q\nstderr: %s", tc.args, code, tc.code, tc.want, o, e)
		}
	}
}
