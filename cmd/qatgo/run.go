package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/qatgo/qatgo/data/preprocess"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
)

func init() {
	register(&command{
		name:    "run",
		args:    "MODEL INPUT",
		summary: "classify one input (PNG or PGM image, or raw bytes) and print the top-k classes",
		detail: `INPUT is a PNG image, a PGM image (P5 binary or P2 text, maxval <= 255), or a raw file of
exactly as many bytes as the model input has elements (for example 784 bytes for a 28x28 image,
row-major). Images must already have the model's size (no resizing); a model input with 1 channel
takes grayscale, 3 channels RGB. Pixels go in as bytes for uint8-input models and, for float32-input
models, as byte/255 normalised as the model's metadata says (input.mean/input.std, see qatgo eval). MNIST digits are white on black: use -invert for black-on-white drawings.`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			k := fs.Int("k", 3, "number of classes to print")
			invert := fs.Bool("invert", false, "invert pixel values (255-v) before running")
			load := loadFlag(fs)
			return func(e *env, args []string) error {
				if err := needArgs(args, "MODEL", "INPUT"); err != nil {
					return err
				}
				if *k < 1 {
					return usagef("-k must be at least 1, got %d", *k)
				}
				lo, err := load()
				if err != nil {
					return err
				}
				return runOne(e, args[0], args[1], *k, *invert, lo)
			}
		},
	})
}

// maxInputFile bounds the size of an input file.
const maxInputFile = 64 << 20

func runOne(e *env, modelPath, inputPath string, k int, invert bool, lo infer.LoadOptions) error {
	m, err := qmodel.ReadFile(modelPath)
	if err != nil {
		return err
	}
	if m.IsLM() {
		return fmt.Errorf("model %s is a language model: run classifies images; use qatgo generate, eval -text or bench", safe(m.Name))
	}
	md, err := infer.LoadWith(m, lo)
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	px, err := readInput(inputPath, md.InputShape(), md.InputSize())
	if err != nil {
		return err
	}
	if invert {
		for i := range px {
			px[i] = 255 - px[i]
		}
	}
	s := md.NewSession()
	var out []float32
	if spec, serr := inputSpec(m); serr == nil && spec.Size() == len(px) {
		// normalised as the model's metadata says (input.mean/input.std; default byte/255)
		set, err := preprocess.NewSet(spec, px, []uint8{0})
		if err != nil {
			return err
		}
		out, err = runSet(s, set, 0, 1)
		if err != nil {
			return err
		}
	} else if ok := errors.Is(serr, errUint8Normalised); ok {
		return serr
	} else if out, err = runBytes(s, px, 1); err != nil {
		return err
	}
	printTopK(e, md, out, k)
	return nil
}

// runBytes runs a batch of byte samples through a model whose input is uint8 (bytes as they are)
// or float32 (bytes/255).
func runBytes(s *infer.Session, px []byte, batch int) ([]float32, error) {
	switch s.Model().InputType() {
	case qmodel.Uint8:
		return s.RunUint8(px, batch)
	case qmodel.Float32:
		f := make([]float32, len(px))
		for i, v := range px {
			f[i] = float32(v) / 255
		}
		return s.Run(f, batch)
	}
	return nil, fmt.Errorf("model input is %v: only uint8 or float32 inputs can be fed from images", s.Model().InputType())
}

func printTopK(e *env, md *infer.Model, out []float32, k int) {
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return out[idx[a]] > out[idx[b]] })
	k = min(k, len(idx))
	sum, nonneg := 0.0, true
	for _, v := range out {
		sum += float64(v)
		nonneg = nonneg && v >= 0
	}
	col := "score"
	if nonneg && math.Abs(sum-1) < 0.05 {
		col = "probability"
	}
	labels := md.Labels()
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "rank\tclass\tlabel\t%s\n", col)
	for r, i := range idx[:k] {
		label := "-"
		if i < len(labels) {
			label = safe(labels[i])
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.4f\n", r+1, i, label, out[i])
	}
	tw.Flush()
}

// readInput reads an image or raw bytes and returns exactly size bytes in the model's per-sample
// layout (HWC).
func readInput(path string, shape []int, size int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, err // an *os.PathError: it names the operation and the path
	}
	if len(data) > maxInputFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxInputFile)
	}
	h, w, c := 0, 0, 0
	if len(shape) == 3 {
		h, w, c = shape[0], shape[1], shape[2]
	} else if len(shape) == 2 {
		h, w, c = shape[0], shape[1], 1
	}
	isPNG := bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n"))
	isPGM := bytes.HasPrefix(data, []byte("P5")) || bytes.HasPrefix(data, []byte("P2"))
	// Raw bytes may start with "P5" or "P2" by chance: a file of exactly the input size that does
	// not parse as PGM is taken as raw.
	rawOK := len(data) == size
	if (isPNG || isPGM && !rawOK) && (h == 0 || (c != 1 && c != 3)) {
		return nil, fmt.Errorf("%s is an image, but the model input shape %v is not an image [H W 1] or [H W 3]: pass raw bytes", path, shape)
	}
	var img image.Image
	switch {
	case isPNG:
		// Check the size in the header first: a small compressed file can hold a huge image.
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if cfg.Width != w || cfg.Height != h {
			return nil, fmt.Errorf("%s: image is %dx%d, the model expects %dx%d (width x height): resize it first", path, cfg.Width, cfg.Height, w, h)
		}
		if img, err = png.Decode(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case isPGM && (h > 0 && (c == 1 || c == 3) || !rawOK):
		if img, err = decodePGM(data); err != nil {
			if rawOK {
				return data, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	default:
		if !rawOK {
			return nil, fmt.Errorf("%s: not a PNG or PGM image, and as raw bytes it has %d bytes but the model input %v needs %d", path, len(data), shape, size)
		}
		return data, nil
	}
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		return nil, fmt.Errorf("%s: image is %dx%d, the model expects %dx%d (width x height): resize it first", path, b.Dx(), b.Dy(), w, h)
	}
	out := make([]byte, 0, size)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			px := img.At(x, y)
			if c == 1 {
				out = append(out, color.GrayModel.Convert(px).(color.Gray).Y)
			} else {
				r, g, bb, _ := px.RGBA()
				out = append(out, byte(r>>8), byte(g>>8), byte(bb>>8))
			}
		}
	}
	return out, nil
}

// decodePGM decodes a binary (P5) or plain (P2) PGM image with maxval <= 255; pixel values are
// scaled to 0..255.
func decodePGM(data []byte) (*image.Gray, error) {
	r := bytes.NewReader(data)
	token := func() (string, error) {
		var tok []byte
		for {
			ch, err := r.ReadByte()
			if err != nil {
				if len(tok) > 0 && err == io.EOF {
					return string(tok), nil
				}
				return "", fmt.Errorf("pgm: truncated header")
			}
			switch {
			case ch == '#' && len(tok) == 0:
				for ch != '\n' {
					if ch, err = r.ReadByte(); err != nil {
						return "", fmt.Errorf("pgm: truncated comment")
					}
				}
			case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
				if len(tok) > 0 {
					return string(tok), nil
				}
			default:
				if len(tok) > 16 {
					return "", fmt.Errorf("pgm: malformed header")
				}
				tok = append(tok, ch)
			}
		}
	}
	num := func(what string, lo, hi int) (int, error) {
		t, err := token()
		if err != nil {
			return 0, err
		}
		v, err := strconv.Atoi(t)
		if err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("pgm: %s %q outside [%d,%d]", what, t, lo, hi)
		}
		return v, nil
	}
	magic, err := token()
	if err != nil {
		return nil, err
	}
	if magic != "P5" && magic != "P2" {
		return nil, fmt.Errorf("pgm: magic %q, want P5 or P2", magic)
	}
	w, err := num("width", 1, 1<<14)
	if err != nil {
		return nil, err
	}
	h, err := num("height", 1, 1<<14)
	if err != nil {
		return nil, err
	}
	maxv, err := num("maxval", 1, 255)
	if err != nil {
		return nil, fmt.Errorf("%w (16-bit PGM is not supported)", err)
	}
	// Check the pixel count against the bytes left before allocating: P5 needs one byte per pixel,
	// P2 at least two (a digit and a separator; the last separator may be missing).
	left := r.Len()
	if magic == "P5" && w*h > left || magic == "P2" && 2*w*h-1 > left {
		return nil, fmt.Errorf("pgm: %dx%d pixels expected, only %d bytes left", w, h, left)
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	scale := func(v int) uint8 { return uint8((v*255 + maxv/2) / maxv) }
	if magic == "P5" {
		// Exactly one whitespace byte follows maxval; token() consumed it.
		buf := make([]byte, w*h)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("pgm: %d pixels expected: %w", w*h, err)
		}
		for i, v := range buf {
			if int(v) > maxv {
				return nil, fmt.Errorf("pgm: pixel %d = %d exceeds maxval %d", i, v, maxv)
			}
			img.Pix[i] = scale(int(v))
		}
		return img, nil
	}
	for i := range img.Pix {
		v, err := num("pixel", 0, maxv)
		if err != nil {
			return nil, err
		}
		img.Pix[i] = scale(v)
	}
	return img, nil
}
