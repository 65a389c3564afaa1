// Package imagefolder loads a folder of labelled images: one sub-folder per class (sorted by name:
// the first is label 0), each holding PNG, JPEG or binary PGM (P5) files. Images are converted to
// 8-bit grey and resized to the requested size by averaging the source pixels each target pixel
// covers (nearest pixel when enlarging), giving an mnist.Set that the rest of qatgo reads like MNIST
// (pixel/255 as the float input).
package imagefolder

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // JPEG decoder
	_ "image/png"  // PNG decoder
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/qatgo/qatgo/data/mnist"
)

// MaxImages bounds the number of images Load reads.
const MaxImages = 1 << 20

// MaxPixels bounds the pixel count of one source image (64 Mpixel).
const MaxPixels = 1 << 26

// IsImageFolder reports whether dir has at least one sub-folder (the class layout Load reads).
func IsImageFolder(dir string) bool {
	es, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range es {
		if e.IsDir() {
			return true
		}
	}
	return false
}

// Load reads every image under dir/<class>/ and returns them as rows x cols grey images with
// labels, plus the class names in label order.
func Load(dir string, rows, cols int) (*mnist.Set, []string, error) {
	if rows < 1 || cols < 1 || rows*cols > MaxPixels {
		return nil, nil, fmt.Errorf("imagefolder: target size %dx%d", rows, cols)
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("imagefolder: %w", err)
	}
	var classes []string
	for _, e := range es {
		if e.IsDir() {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) == 0 || len(classes) > 256 {
		return nil, nil, fmt.Errorf("imagefolder: %s has %d class folders (want 1 to 256)", dir, len(classes))
	}
	set := &mnist.Set{Rows: rows, Cols: cols}
	for label, c := range classes {
		fs, err := os.ReadDir(filepath.Join(dir, c))
		if err != nil {
			return nil, nil, fmt.Errorf("imagefolder: %w", err)
		}
		for _, f := range fs {
			ext := strings.ToLower(filepath.Ext(f.Name()))
			if f.IsDir() || (ext != ".png" && ext != ".jpg" && ext != ".jpeg" && ext != ".pgm") {
				continue
			}
			if len(set.Labels) >= MaxImages {
				return nil, nil, fmt.Errorf("imagefolder: more than %d images in %s", MaxImages, dir)
			}
			p := filepath.Join(dir, c, f.Name())
			g, err := readGrey(p)
			if err != nil {
				return nil, nil, fmt.Errorf("imagefolder: %s: %w", p, err)
			}
			set.Pixels = append(set.Pixels, resize(g, rows, cols)...)
			set.Labels = append(set.Labels, uint8(label))
		}
	}
	if len(set.Labels) == 0 {
		return nil, nil, fmt.Errorf("imagefolder: no PNG, JPEG or PGM images under %s", dir)
	}
	return set, classes, nil
}

func readGrey(path string) (*image.Gray, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	if strings.EqualFold(filepath.Ext(path), ".pgm") {
		return DecodePGM(r)
	}
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return nil, err
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width*cfg.Height > MaxPixels {
		return nil, fmt.Errorf("image of %dx%d pixels", cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bufio.NewReader(f))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			g.SetGray(x, y, color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray))
		}
	}
	return g, nil
}

// DecodePGM decodes a binary PGM (P5) image with maxval <= 255.
func DecodePGM(r io.Reader) (*image.Gray, error) {
	br := bufio.NewReader(r)
	var magic string
	var w, h, maxv int
	if _, err := fmt.Fscan(br, &magic); err != nil || magic != "P5" {
		return nil, errors.New("not a binary PGM (P5)")
	}
	for _, p := range []*int{&w, &h, &maxv} {
		if err := skipComments(br); err != nil {
			return nil, err
		}
		if _, err := fmt.Fscan(br, p); err != nil {
			return nil, fmt.Errorf("PGM header: %w", err)
		}
	}
	if w < 1 || h < 1 || w*h > MaxPixels || maxv < 1 || maxv > 255 {
		return nil, fmt.Errorf("PGM %dx%d maxval %d (want maxval <= 255)", w, h, maxv)
	}
	if _, err := br.ReadByte(); err != nil { // the single whitespace after maxval
		return nil, err
	}
	g := image.NewGray(image.Rect(0, 0, w, h))
	if _, err := io.ReadFull(br, g.Pix); err != nil {
		return nil, fmt.Errorf("PGM data: %w", err)
	}
	if maxv != 255 {
		for i, v := range g.Pix {
			g.Pix[i] = uint8(min(255, int(v)*255/maxv))
		}
	}
	return g, nil
}

func skipComments(br *bufio.Reader) error {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return err
		}
		switch {
		case b[0] == '#':
			if _, err := br.ReadString('\n'); err != nil {
				return err
			}
		case b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r':
			br.ReadByte()
		default:
			return nil
		}
	}
}

// resize returns g as rows x cols bytes: each target pixel averages the source pixels whose
// centres fall in its area (at least the nearest one).
func resize(g *image.Gray, rows, cols int) []byte {
	h, w := g.Rect.Dy(), g.Rect.Dx()
	out := make([]byte, rows*cols)
	for ty := 0; ty < rows; ty++ {
		y0, y1 := ty*h/rows, max((ty+1)*h/rows, ty*h/rows+1)
		for tx := 0; tx < cols; tx++ {
			x0, x1 := tx*w/cols, max((tx+1)*w/cols, tx*w/cols+1)
			sum, n := 0, 0
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					sum += int(g.Pix[y*g.Stride+x])
					n++
				}
			}
			out[ty*cols+tx] = uint8((sum + n/2) / n)
		}
	}
	return out
}
