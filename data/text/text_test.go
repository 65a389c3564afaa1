package text

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadGoSourceDeterministicSubset(t *testing.T) {
	o := Options{MaxBytes: 300 << 10, MaxFileBytes: 16 << 10}
	a, err := LoadGoSource(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadGoSource(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Files, b.Files) || !bytes.Equal(a.Train, b.Train) || !bytes.Equal(a.Val, b.Val) {
		t.Fatal("two loads differ")
	}
	total, nVal, dirs := 0, 0, map[string]bool{}
	for i, f := range a.Files {
		if !strings.HasSuffix(f.Path, ".go") || strings.HasSuffix(f.Path, "_test.go") || strings.Contains(f.Path, "testdata/") {
			t.Errorf("unexpected file %s", f.Path)
		}
		if f.Size > o.MaxFileBytes {
			t.Errorf("%s: %d bytes over the per-file cap", f.Path, f.Size)
		}
		if i > 0 && a.Files[i-1].Path >= f.Path {
			t.Errorf("files not in path order at %s", f.Path)
		}
		total += f.Size
		if f.Val {
			nVal++
		}
		dirs[strings.SplitN(f.Path, "/", 2)[0]] = true
	}
	if total > o.MaxBytes || total < o.MaxBytes*9/10 {
		t.Errorf("selected %d bytes for a cap of %d", total, o.MaxBytes)
	}
	if nVal == 0 || nVal == len(a.Files) {
		t.Errorf("%d of %d files in validation", nVal, len(a.Files))
	}
	if len(dirs) < 10 {
		t.Errorf("subset covers only %d top-level directories: %v", len(dirs), dirs)
	}
	// every byte of every file is in exactly one split (plus one separator between files)
	if got, want := len(a.Train)+len(a.Val), total+len(a.Files)-2; got != want {
		t.Errorf("train+val %d bytes, want %d", got, want)
	}
	if !bytes.Contains(a.Train, []byte("package ")) || !bytes.Contains(a.Val, []byte("package ")) {
		t.Error("splits do not look like Go source")
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadFolder(t *testing.T) {
	files := map[string]string{
		"bin.dat":       "ab\x00cd",
		".hidden":       "secret",
		".git/config":   "x",
		"big.txt":       strings.Repeat("z", 100),
		"testdata/t.go": "skipped",
	}
	for i := 0; i < 40; i++ {
		files[fmt.Sprintf("d%d/f%02d.txt", i%3, i)] = fmt.Sprintf("file %d\n", i)
	}
	dir := writeFiles(t, files)
	c, err := Load(dir, Options{MaxFileBytes: 50, ValFraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 40 {
		t.Fatalf("%d files selected, want the 40 small text files: %v", len(c.Files), c.Files)
	}
	var nVal int
	for _, f := range c.Files {
		if !strings.HasPrefix(f.Path, "d") {
			t.Errorf("unexpected %s", f.Path)
		}
		body := []byte(files[f.Path])
		inVal, inTrain := bytes.Contains(c.Val, body), bytes.Contains(c.Train, body)
		if f.Val {
			nVal++
		}
		if inVal != f.Val || inTrain == f.Val {
			t.Errorf("%s (val %v): in validation text %v, in training text %v", f.Path, f.Val, inVal, inTrain)
		}
	}
	if nVal < 3 || nVal > 20 {
		t.Errorf("%d of 40 files in validation with fraction 0.25", nVal)
	}
	// size cap: files are taken in hash order until the cap
	c2, err := Load(dir, Options{MaxBytes: 50, MaxFileBytes: 50})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c2.Train) + len(c2.Val); n > 50+len(c2.Files) || len(c2.Files) > 7 {
		t.Errorf("cap 50: %d files, %d bytes", len(c2.Files), n)
	}
}

func TestLoadSingleFileSplitsBytes(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.txt": strings.Repeat("0123456789", 10)})
	c, err := Load(filepath.Join(dir, "a.txt"), Options{ValFraction: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Train) != 80 || len(c.Val) != 20 {
		t.Fatalf("train %d, val %d bytes, want 80/20", len(c.Train), len(c.Val))
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
		t.Error("missing path: no error")
	}
	if _, err := Load(t.TempDir(), Options{}); !errors.Is(err, ErrNoText) {
		t.Errorf("empty dir: %v, want ErrNoText", err)
	}
	dir := writeFiles(t, map[string]string{"b.bin": "\x00\x01"})
	if _, err := Load(dir, Options{}); !errors.Is(err, ErrNoText) {
		t.Errorf("binary only: %v, want ErrNoText", err)
	}
	if _, err := Load(dir, Options{ValFraction: 1.5}); err == nil {
		t.Error("ValFraction 1.5: no error")
	}
}

func TestByteTokenizer(t *testing.T) {
	var tk ByteTokenizer
	in := []byte("func main() {\n\t\xff\x00}")
	ids := tk.Encode(in)
	if len(ids) != len(in) || ids[0] != 'f' || ids[len(ids)-3] != 255 {
		t.Fatalf("ids %v", ids)
	}
	if !bytes.Equal(tk.Decode(ids), in) {
		t.Fatal("round trip failed")
	}
	if got := string(tk.Decode([]int{104, -1, 256, 105})); got != "h??i" {
		t.Fatalf("Decode out of range: %q", got)
	}
}

func FuzzByteTokenizerRoundTrip(f *testing.F) {
	f.Add([]byte("package main"))
	f.Add([]byte{0, 255, 128})
	f.Fuzz(func(t *testing.T, b []byte) {
		var tk ByteTokenizer
		if got := tk.Decode(tk.Encode(b)); !bytes.Equal(got, b) {
			t.Fatalf("round trip %q -> %q", b, got)
		}
	})
}

func TestSampler(t *testing.T) {
	toks := make([]int, 1000)
	for i := range toks {
		toks[i] = i
	}
	s, err := NewSampler(toks, 4, 16, 42)
	if err != nil {
		t.Fatal(err)
	}
	x1, y1 := s.Next(7)
	x2, y2 := s.Next(7)
	if !slices.Equal(x1, x2) || !slices.Equal(y1, y2) {
		t.Fatal("same (seed, step) gave different batches")
	}
	x3, _ := s.Next(8)
	if slices.Equal(x1, x3) {
		t.Fatal("steps 7 and 8 gave the same batch")
	}
	s2, _ := NewSampler(toks, 4, 16, 43)
	if x4, _ := s2.Next(7); slices.Equal(x1, x4) {
		t.Fatal("seeds 42 and 43 gave the same batch")
	}
	for b := 0; b < 4; b++ {
		x, y := x1[b*16:(b+1)*16], y1[b*16:(b+1)*16]
		for i := range x {
			if y[i] != x[i]+1 || (i > 0 && x[i] != x[i-1]+1) || x[i] < 0 || y[i] >= len(toks) {
				t.Fatalf("row %d is not a window with shifted targets: %v %v", b, x, y)
			}
		}
	}
	if _, err := NewSampler(toks[:16], 1, 16, 1); err == nil {
		t.Fatal("16 tokens for windows of 17: no error")
	}
}

func TestWindows(t *testing.T) {
	toks := make([]int, 50)
	for i := range toks {
		toks[i] = i
	}
	xs, ys := Windows(toks, 2, 8, 0)
	if len(xs) != 3 { // 49/8 = 6 windows -> 3 batches of 2
		t.Fatalf("%d batches", len(xs))
	}
	if xs[1][8] != 24 || ys[1][8] != 25 || xs[2][15] != 47 || ys[2][15] != 48 {
		t.Fatalf("windows %v %v", xs[1], ys[1])
	}
	if xs, _ := Windows(toks, 2, 8, 1); len(xs) != 1 {
		t.Fatalf("maxBatches 1: %d batches", len(xs))
	}
}

func Example() {
	dir, _ := os.MkdirTemp("", "text")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte(strings.Repeat("hello, world\n", 10)), 0o644)
	c, err := Load(dir, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	var tk ByteTokenizer
	s, _ := NewSampler(tk.Encode(c.Train), 2, 5, 1)
	x, y := s.Next(0)
	fmt.Println(len(c.Train), len(c.Val), len(x), len(y), tk.VocabSize())
	// Output: 117 13 10 10 256
}
