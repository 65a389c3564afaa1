package mnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func idx(magic uint32, dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(data)
	return b.Bytes()
}

func TestReadMalformed(t *testing.T) {
	good := idx(magicImages, []uint32{2, 2, 3}, make([]byte, 12))
	if r, c, px, err := ReadImages(bytes.NewReader(good)); err != nil || r != 2 || c != 3 || len(px) != 12 {
		t.Fatalf("good images: %d %d %d %v", r, c, len(px), err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", good[:10]},
		{"bad magic", idx(magicLabels, []uint32{2, 2, 3}, make([]byte, 12))},
		{"truncated", good[:len(good)-1]},
		{"zero rows", idx(magicImages, []uint32{2, 0, 3}, nil)},
		{"huge count", idx(magicImages, []uint32{1 << 30, 28, 28}, make([]byte, 10))},
	} {
		if _, _, _, err := ReadImages(bytes.NewReader(tc.data)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", tc.name, err)
		}
	}
	if l, err := ReadLabels(bytes.NewReader(idx(magicLabels, []uint32{3}, []byte{0, 9, 4}))); err != nil || len(l) != 3 || l[1] != 9 {
		t.Fatalf("good labels %v %v", l, err)
	}
	for _, data := range [][]byte{
		idx(magicLabels, []uint32{3}, []byte{0, 10, 4}), // label out of range
		idx(magicLabels, []uint32{3}, []byte{0, 1}),     // truncated
		idx(magicImages, []uint32{3}, []byte{0, 1, 2}),  // wrong magic
	} {
		if _, err := ReadLabels(bytes.NewReader(data)); !errors.Is(err, ErrFormat) {
			t.Errorf("labels %x: err %v", data, err)
		}
	}
}

func TestLoadFilesCountMismatchAndGzip(t *testing.T) {
	dir := t.TempDir()
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(idx(magicImages, []uint32{2, 1, 2}, []byte{0, 255, 51, 102}))
	w.Close()
	os.WriteFile(filepath.Join(dir, "img.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "lab2"), idx(magicLabels, []uint32{2}, []byte{7, 3}), 0o644)
	os.WriteFile(filepath.Join(dir, "lab3"), idx(magicLabels, []uint32{3}, []byte{7, 3, 1}), 0o644)
	s, err := LoadFiles(filepath.Join(dir, "img.gz"), filepath.Join(dir, "lab2"))
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 4)
	y := make([]int, 2)
	s.Batch([]int{1, 0}, x, y)
	if d0, d1 := x[0]-0.2, x[1]-0.4; d0*d0 > 1e-12 || d1*d1 > 1e-12 || x[2] != 0 || x[3] != 1 || y[0] != 3 || y[1] != 7 {
		t.Fatalf("batch %v %v", x, y)
	}
	if _, err := LoadFiles(filepath.Join(dir, "img.gz"), filepath.Join(dir, "lab3")); !errors.Is(err, ErrFormat) {
		t.Fatalf("count mismatch: %v", err)
	}
	if _, err := LoadFiles(filepath.Join(dir, "missing"), filepath.Join(dir, "lab3")); err == nil {
		t.Fatal("missing file accepted")
	}
	t.Setenv(EnvDir, dir)
	if _, err := Locate(); err == nil {
		t.Fatal("Locate accepted a directory without the idx files")
	}
}

func TestRealFiles(t *testing.T) {
	dir, err := Locate()
	if err != nil {
		t.Skip("MNIST files not available:", err)
	}
	test, err := LoadFiles(filepath.Join(dir, TestImagesFile), filepath.Join(dir, TestLabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 10000 || test.Rows != 28 || test.Cols != 28 {
		t.Fatalf("test set %d %dx%d", test.Len(), test.Rows, test.Cols)
	}
	// Known facts about t10k: the first labels are 7 2 1 0 4 1 4 9 5 9; label counts sum to 10000.
	want := []uint8{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}
	for i, l := range want {
		if test.Labels[i] != l {
			t.Fatalf("label %d = %d want %d", i, test.Labels[i], l)
		}
	}
	var count [10]int
	for _, l := range test.Labels {
		count[l]++
	}
	if count[1] != 1135 || count[5] != 892 {
		t.Fatalf("class counts %v", count)
	}
	sub := test.Subset(100)
	if sub.Len() != 100 || len(sub.Pixels) != 100*784 {
		t.Fatalf("subset %d", sub.Len())
	}
}

func FuzzReadImages(f *testing.F) {
	f.Add(idx(magicImages, []uint32{1, 2, 2}, []byte{1, 2, 3, 4}))
	f.Add(idx(magicImages, []uint32{1 << 20, 28, 28}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, c, px, err := ReadImages(bytes.NewReader(data))
		if err == nil && (r*c == 0 || len(px)%(r*c) != 0) {
			t.Fatalf("accepted inconsistent %d %d %d", r, c, len(px))
		}
		ReadLabels(bytes.NewReader(data))
	})
}

// FuzzReadLabels: arbitrary bytes give labels or an error, never a panic; accepted labels are
// exactly the count the header gives, read from the bytes after it, each in 0..9.
func FuzzReadLabels(f *testing.F) {
	f.Add(idx(magicLabels, []uint32{3}, []byte{0, 9, 4}))
	f.Add(idx(magicLabels, []uint32{0}, nil))
	f.Add(idx(magicLabels, []uint32{2}, []byte{7, 3, 5, 5})) // trailing bytes
	f.Add(idx(magicLabels, []uint32{3}, []byte{0, 1}))       // truncated
	f.Add(idx(magicLabels, []uint32{3}, []byte{0, 10, 4}))   // label out of range
	f.Add(idx(magicLabels, []uint32{1<<32 - 1}, []byte{1}))  // huge count
	f.Add(idx(magicImages, []uint32{1}, []byte{1}))          // wrong magic
	f.Add([]byte{0, 0, 8})                                   // short header
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, err := ReadLabels(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if len(data) < 8 || binary.BigEndian.Uint32(data) != magicLabels {
			t.Fatalf("accepted %d bytes without a label header", len(data))
		}
		n := int(binary.BigEndian.Uint32(data[4:]))
		if len(labels) != n || len(data)-8 < n {
			t.Fatalf("header count %d, %d data bytes, got %d labels", n, len(data)-8, len(labels))
		}
		for i, l := range labels {
			if l > 9 || l != data[8+i] {
				t.Fatalf("label %d = %d, byte %d", i, l, data[8+i])
			}
		}
	})
}
