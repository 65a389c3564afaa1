// Package imagefolder loads a folder of labelled images: one sub-folder per class (sorted by name:
// the first is label 0), each holding PNG, JPEG or binary PGM (P5) files. Images are converted to
// the channels a model reads (grey, RGB or RGBA) and resized to its input size by averaging the
// source pixels each target pixel covers (nearest pixel when enlarging), giving a preprocess.Set
// that normalises them as the model's metadata says (package preprocess).
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

	"github.com/qatgo/qatgo/data/preprocess"
)

// MaxImages bounds the number of images Load reads.
const MaxImages = 1 << 20

// MaxPixels bounds the pixel count of one source image (64 Mpixel).
const MaxPixels = 1 << 26

// MaxBytes bounds the total size of the resized images Load keeps (1 GiB).
const MaxBytes = 1 << 30

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

// Load reads every image under dir/<class>/ into a set of spec's size and normalisation: each
// image is converted to spec.Channels channels (1: grey, 3: RGB, 4: RGBA; a grey image is
// replicated into RGB) and box-resized to spec.Height x spec.Width. It also returns the class
// names in label order.
func Load(dir string, spec preprocess.Spec) (*preprocess.Set, []string, error) {
	if err := spec.Validate(); err != nil {
		return nil, nil, fmt.Errorf("imagefolder: %w", err)
	}
	if spec.Size() > MaxPixels {
		return nil, nil, fmt.Errorf("imagefolder: target size %v", spec)
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
	var pixels []byte
	var labels []uint8
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
			if len(labels) >= MaxImages || len(pixels) > MaxBytes-spec.Size() {
				return nil, nil, fmt.Errorf("imagefolder: more than %d images or %d bytes in %s", MaxImages, MaxBytes, dir)
			}
			p := filepath.Join(dir, c, f.Name())
			img, err := ReadImage(p, spec.Channels)
			if err != nil {
				return nil, nil, fmt.Errorf("imagefolder: %s: %w", p, err)
			}
			pixels = append(pixels, img.Resize(spec.Height, spec.Width).Pix...)
			labels = append(labels, uint8(label))
		}
	}
	if len(labels) == 0 {
		return nil, nil, fmt.Errorf("imagefolder: no PNG, JPEG or PGM images under %s", dir)
	}
	set, err := preprocess.NewSet(spec, pixels, labels)
	return set, classes, err
}

// Image is a decoded image: H x W pixels of C interleaved 8-bit channels (row-major).
type Image struct {
	H, W, C int
	Pix     []byte
}

// ReadImage decodes a PNG, JPEG or binary PGM file into channels channels (1 grey, 3 RGB, 4
// RGBA); the source is at most MaxPixels pixels.
func ReadImage(path string, channels int) (*Image, error) {
	if channels != 1 && channels != 3 && channels != 4 {
		return nil, fmt.Errorf("%d channels (want 1, 3 or 4)", channels)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeImage(f, strings.EqualFold(filepath.Ext(path), ".pgm"), channels)
}

// decodeImage decodes the PGM (pgm set) or PNG/JPEG image in rs, which it reads twice (the
// header, then the image), into channels channels (1, 3 or 4).
func decodeImage(rs io.ReadSeeker, pgm bool, channels int) (*Image, error) {
	r := bufio.NewReader(rs)
	var img image.Image
	var err error
	if pgm {
		if img, err = DecodePGM(r); err != nil {
			return nil, err
		}
	} else {
		cfg, _, err := image.DecodeConfig(r)
		if err != nil {
			return nil, err
		}
		if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxPixels/cfg.Height {
			return nil, fmt.Errorf("image of %dx%d pixels", cfg.Width, cfg.Height)
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if img, _, err = image.Decode(bufio.NewReader(rs)); err != nil {
			return nil, err
		}
	}
	return FromImage(img, channels), nil
}

// FromImage converts img to channels channels: 1 is grey (color.GrayModel), 3 and 4 are RGB(A)
// without alpha premultiplication.
func FromImage(img image.Image, channels int) *Image {
	b := img.Bounds()
	out := &Image{H: b.Dy(), W: b.Dx(), C: channels, Pix: make([]byte, b.Dx()*b.Dy()*channels)}
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if channels == 1 {
				out.Pix[i] = color.GrayModel.Convert(c).(color.Gray).Y
				i++
				continue
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			copy(out.Pix[i:i+channels], []byte{n.R, n.G, n.B, n.A})
			i += channels
		}
	}
	return out
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
	if w < 1 || h < 1 || w > MaxPixels/h || maxv < 1 || maxv > 255 { // w > MaxPixels/h: w*h can overflow
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

// Resize returns the image at rows x cols: each target pixel averages, per channel, the source
// pixels whose centres fall in its area (at least the nearest one: enlarging repeats pixels).
func (g *Image) Resize(rows, cols int) *Image {
	h, w, ch := g.H, g.W, g.C
	out := &Image{H: rows, W: cols, C: ch, Pix: make([]byte, rows*cols*ch)}
	for ty := 0; ty < rows; ty++ {
		y0, y1 := ty*h/rows, max((ty+1)*h/rows, ty*h/rows+1)
		for tx := 0; tx < cols; tx++ {
			x0, x1 := tx*w/cols, max((tx+1)*w/cols, tx*w/cols+1)
			for c := 0; c < ch; c++ {
				sum, n := 0, 0
				for y := y0; y < y1; y++ {
					for x := x0; x < x1; x++ {
						sum += int(g.Pix[(y*w+x)*ch+c])
						n++
					}
				}
				out.Pix[(ty*cols+tx)*ch+c] = uint8((sum + n/2) / n)
			}
		}
	}
	return out
}
