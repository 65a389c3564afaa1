// Package text loads a text corpus for language-model training, tokenizes it and cuts it into
// batches of sequences.
//
// The default corpus is the Go standard library source that ships with every Go toolchain
// ($(go env GOROOT)/src): [LoadGoSource] takes the non-test .go files outside testdata
// directories, drops files larger than Options.MaxFileBytes, and picks a deterministic subset of
// at most Options.MaxBytes bytes (files ordered by an FNV-1a hash of their path, so the subset
// spreads over the whole library; the selection is then listed in path order). [Load] does the
// same for any text file or folder the user names (every regular file without NUL bytes in its
// first 8 KiB, hidden files and directories skipped).
//
// Files are split into training and validation sets by a hash of their path (Options.ValFraction
// of the files go to validation), so no file is in both. When that leaves either side empty
// (for example a single file), the concatenated text is split at byte (1-ValFraction)*len
// instead. Files are joined with a newline between them.
//
// [ByteTokenizer] maps bytes to ids 0..255 (vocabulary 256). [Sampler] draws batches of random
// windows; batch i is a pure function of (seed, i), so a resumed run sees the same data order.
// [Windows] cuts a stream into consecutive non-overlapping windows for a stable validation loss.
package text

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Options control which files a corpus takes and how it is split.
type Options struct {
	MaxBytes     int     // cap on the total size of the selected files; 0 means 4 MiB
	MaxFileBytes int     // files larger than this are skipped; 0 means 64 KiB
	ValFraction  float64 // fraction of files (or bytes) held out for validation; 0 means 0.1
}

func (o *Options) defaults() error {
	if o.MaxBytes == 0 {
		o.MaxBytes = 4 << 20
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = 64 << 10
	}
	if o.ValFraction == 0 {
		o.ValFraction = 0.1
	}
	if o.MaxBytes < 0 || o.MaxFileBytes < 0 || !(o.ValFraction > 0 && o.ValFraction < 1) {
		return fmt.Errorf("text: invalid options %+v (MaxBytes and MaxFileBytes must be >= 0, ValFraction in (0, 1))", *o)
	}
	return nil
}

// File is one selected file of a corpus.
type File struct {
	Path string // relative to Corpus.Root ("." for a single-file corpus)
	Size int    // bytes
	Val  bool   // held out for validation
}

// Corpus is the selected text, split into training and validation bytes.
type Corpus struct {
	Root       string // the folder or file the corpus was read from
	Files      []File // in path order
	Train, Val []byte // the training and the held-out files, concatenated in path order
}

// ErrNoText is returned when no file qualifies.
var ErrNoText = errors.New("text: no usable text files")

// GoRoot returns the Go toolchain root: `go env GOROOT`, else $GOROOT, else runtime.GOROOT().
func GoRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if r := strings.TrimSpace(string(out)); r != "" {
			return r, nil
		}
	}
	if r := os.Getenv("GOROOT"); r != "" {
		return r, nil
	}
	// runtime.GOROOT is deprecated but is the last resort when the go command is not on PATH.
	if r := runtime.GOROOT(); r != "" {
		return r, nil
	}
	return "", errors.New("text: cannot find GOROOT (no go command, no $GOROOT): set GOROOT or give a text file or folder")
}

// LoadGoSource loads the deterministic subset of the Go standard library source described in the
// package documentation.
func LoadGoSource(o Options) (*Corpus, error) {
	root, err := GoRoot()
	if err != nil {
		return nil, err
	}
	return load(filepath.Join(root, "src"), o, func(rel string, d fs.DirEntry) bool {
		return strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")
	}, false)
}

// Load loads a text file, or the text files of a folder (recursively), with the selection and
// split rules of the package documentation.
func Load(path string, o Options) (*Corpus, error) {
	return load(path, o, func(string, fs.DirEntry) bool { return true }, true)
}

func load(root string, o Options, keep func(rel string, d fs.DirEntry) bool, sniff bool) (*Corpus, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	var cands []File
	if !st.IsDir() {
		cands = []File{{Path: ".", Size: int(st.Size())}}
		root = filepath.Clean(root)
	} else {
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if p != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || strings.HasPrefix(name, ".") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if !keep(rel, d) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() > int64(o.MaxFileBytes) || info.Size() == 0 {
				return nil
			}
			cands = append(cands, File{Path: rel, Size: int(info.Size())})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("text: walking %s: %w", root, err)
		}
	}
	// deterministic spread: hash order, then cap
	slices.SortFunc(cands, func(a, b File) int {
		ha, hb := pathHash(a.Path, 0), pathHash(b.Path, 0)
		if ha != hb {
			if ha < hb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Path, b.Path)
	})
	c := &Corpus{Root: root}
	contents := map[string][]byte{}
	total := 0
	for _, f := range cands {
		if total+f.Size > o.MaxBytes && !(len(c.Files) == 0 && !st.IsDir()) {
			continue
		}
		p := root
		if f.Path != "." {
			p = filepath.Join(root, filepath.FromSlash(f.Path))
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("text: %w", err)
		}
		if sniff && bytes.IndexByte(b[:min(len(b), 8192)], 0) >= 0 {
			continue // binary
		}
		if len(b) > o.MaxBytes {
			b = b[:o.MaxBytes] // only a single file can get here
		}
		f.Size = len(b)
		f.Val = float64(pathHash(f.Path, 1)%10000) < o.ValFraction*10000
		contents[f.Path] = b
		c.Files = append(c.Files, f)
		total += f.Size
	}
	if len(c.Files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoText, root)
	}
	slices.SortFunc(c.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	nVal := 0
	for _, f := range c.Files {
		if f.Val {
			nVal++
		}
	}
	if nVal == 0 || nVal == len(c.Files) {
		var all []byte
		for i := range c.Files {
			c.Files[i].Val = false
			all = appendFile(all, contents[c.Files[i].Path])
		}
		cut := int(float64(len(all)) * (1 - o.ValFraction))
		c.Train, c.Val = all[:cut:cut], all[cut:]
		return c, nil
	}
	for _, f := range c.Files {
		if f.Val {
			c.Val = appendFile(c.Val, contents[f.Path])
		} else {
			c.Train = appendFile(c.Train, contents[f.Path])
		}
	}
	return c, nil
}

func appendFile(dst, b []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, '\n')
	}
	return append(dst, b...)
}

func pathHash(p string, salt byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte{salt})
	h.Write([]byte(p))
	return h.Sum64()
}

// Tokenizer maps text to token ids in [0, VocabSize()) and back.
type Tokenizer interface {
	Encode(b []byte) []int
	Decode(ids []int) []byte
	VocabSize() int
}

// ByteTokenizer is the byte-level tokenizer: one token per byte, vocabulary 256.
type ByteTokenizer struct{}

var _ Tokenizer = ByteTokenizer{}

// Encode returns the bytes of b as ids.
func (ByteTokenizer) Encode(b []byte) []int {
	ids := make([]int, len(b))
	for i, c := range b {
		ids[i] = int(c)
	}
	return ids
}

// Decode returns the bytes of ids; ids outside [0, 256) become '?'.
func (ByteTokenizer) Decode(ids []int) []byte {
	b := make([]byte, len(ids))
	for i, id := range ids {
		if id < 0 || id > 255 {
			b[i] = '?'
			continue
		}
		b[i] = byte(id)
	}
	return b
}

// VocabSize returns 256.
func (ByteTokenizer) VocabSize() int { return 256 }

// Sampler draws training batches: Batch sequences of Ctx tokens starting at random offsets of a
// token stream, with the next tokens as targets. Batch i depends only on (Seed, i).
type Sampler struct {
	Tokens     []int  // the token stream
	Batch, Ctx int    // sequences per batch and tokens per sequence
	Seed       uint64 // with the batch index, selects the offsets
}

// NewSampler checks that tokens hold at least one window of ctx+1 tokens.
func NewSampler(tokens []int, batch, ctx int, seed uint64) (*Sampler, error) {
	if batch < 1 || ctx < 1 {
		return nil, fmt.Errorf("text: batch %d, ctx %d (both must be positive)", batch, ctx)
	}
	if len(tokens) < ctx+1 {
		return nil, fmt.Errorf("text: %d tokens are too few for windows of %d", len(tokens), ctx+1)
	}
	return &Sampler{Tokens: tokens, Batch: batch, Ctx: ctx, Seed: seed}, nil
}

// Next returns batch number step: x and y of length Batch*Ctx (row-major [Batch][Ctx]) with
// y[i] the token after x[i]. It panics when the fields break NewSampler's checks (a Sampler
// built as a literal with Batch or Ctx < 1, or fewer than Ctx+1 tokens): build it with NewSampler.
func (s *Sampler) Next(step int64) (x, y []int) {
	rng := rand.New(rand.NewPCG(s.Seed, uint64(step)))
	x, y = make([]int, s.Batch*s.Ctx), make([]int, s.Batch*s.Ctx)
	span := len(s.Tokens) - s.Ctx
	for b := 0; b < s.Batch; b++ {
		o := rng.IntN(span)
		copy(x[b*s.Ctx:(b+1)*s.Ctx], s.Tokens[o:o+s.Ctx])
		copy(y[b*s.Ctx:(b+1)*s.Ctx], s.Tokens[o+1:o+1+s.Ctx])
	}
	return x, y
}

// Windows cuts tokens into consecutive non-overlapping windows of ctx inputs (window w starts
// at w*ctx; its targets are the following tokens) and groups them into batches of batch
// windows, at most maxBatches (0: all). A final partial batch is dropped.
func Windows(tokens []int, batch, ctx, maxBatches int) (xs, ys [][]int) {
	if batch < 1 || ctx < 1 {
		return nil, nil
	}
	n := (len(tokens) - 1) / ctx / batch
	if maxBatches > 0 {
		n = min(n, maxBatches)
	}
	for i := 0; i < n; i++ {
		x, y := make([]int, batch*ctx), make([]int, batch*ctx)
		for b := 0; b < batch; b++ {
			o := (i*batch + b) * ctx
			copy(x[b*ctx:(b+1)*ctx], tokens[o:o+ctx])
			copy(y[b*ctx:(b+1)*ctx], tokens[o+1:o+1+ctx])
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	return xs, ys
}
