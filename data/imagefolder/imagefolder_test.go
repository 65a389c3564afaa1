package imagefolder

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/data/preprocess"
)

// TestLoad writes a two-class folder (PNG and PGM, different sizes) and checks labels, class
// order and the resized pixels against hand-computed block averages.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"b_dark", "a_light"} {
		os.Mkdir(filepath.Join(dir, c), 0o755)
	}
	// a_light/x.png: 4x4, left half 200, right half 100 -> 2x2: [200 100; 200 100]
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			v := uint8(200)
			if x >= 2 {
				v = 100
			}
			img.SetGray(x, y, color.Gray{v})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	os.WriteFile(filepath.Join(dir, "a_light", "x.png"), buf.Bytes(), 0o644)
	// b_dark/y.pgm: 2x2 with maxval 100: values 0,50,100,100 -> 0,127,255,255
	os.WriteFile(filepath.Join(dir, "b_dark", "y.pgm"), append([]byte("P5\n# c\n2 2\n100\n"), 0, 50, 100, 100), 0o644)
	os.WriteFile(filepath.Join(dir, "b_dark", "notes.txt"), []byte("skip"), 0o644)
	set, classes, err := Load(dir, grey(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(classes) != "[a_light b_dark]" || fmt.Sprint(set.Labels) != "[0 1]" {
		t.Fatalf("classes %v labels %v", classes, set.Labels)
	}
	want := []byte{200, 100, 200, 100, 0, 127, 255, 255}
	if !bytes.Equal(set.Pixels, want) {
		t.Fatalf("pixels %v, want %v", set.Pixels, want)
	}
	if _, _, err := Load(t.TempDir(), grey(2, 2)); err == nil {
		t.Error("empty folder accepted")
	}
}

func grey(h, w int) preprocess.Spec {
	s, err := preprocess.New(1, h, w)
	if err != nil {
		panic(err)
	}
	return s
}

// TestLoadSpec reads PNG (RGB, 6x4), JPEG (grey, 8x8) and PGM (3x3) files of sizes other than
// the model's into a 3-channel 2x2 input with a per-channel normalisation, and checks the bytes
// against hand-computed block averages and the floats against (p/255-mean)/std.
func TestLoadSpec(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"cat", "dog", "eel"} {
		os.Mkdir(filepath.Join(dir, c), 0o755)
	}
	// cat/a.png: 6 wide, 4 high; left 3 columns red (255,0,0), right 3 (0,0,90) -> 2x2 RGB:
	// [255 0 0 | 0 0 90] on both rows.
	rgb := image.NewNRGBA(image.Rect(0, 0, 6, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 6; x++ {
			c := color.NRGBA{255, 0, 0, 255}
			if x >= 3 {
				c = color.NRGBA{0, 0, 90, 255}
			}
			rgb.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, rgb); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cat", "a.png"), buf.Bytes(), 0o644)
	// dog/b.jpg: 8x8 grey 120 everywhere (JPEG keeps a flat block within a level or two).
	g := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range g.Pix {
		g.Pix[i] = 120
	}
	buf.Reset()
	if err := jpeg.Encode(&buf, g, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "dog", "b.JPG"), buf.Bytes(), 0o644)
	// eel/c.pgm: 3x3, rows 10 20 30 / 40 50 60 / 70 80 90. 2x2 boxes: rows [0,1) and [1,3),
	// columns [0,1) and [1,3): 10, (20+30)/2=25, (40+70)/2=55, (50+60+80+90)/4=70.
	os.WriteFile(filepath.Join(dir, "eel", "c.pgm"), append([]byte("P5 3 3 255\n"), 10, 20, 30, 40, 50, 60, 70, 80, 90), 0o644)
	spec, err := preprocess.New(3, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	spec.Mean = []float32{0.5, 0.25, 0}
	spec.Std = []float32{0.5, 1, 2}
	set, classes, err := Load(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(classes) != "[cat dog eel]" || fmt.Sprint(set.Labels) != "[0 1 2]" || set.Len() != 3 {
		t.Fatalf("classes %v labels %v", classes, set.Labels)
	}
	wantCat := []byte{255, 0, 0, 0, 0, 90, 255, 0, 0, 0, 0, 90}
	if !bytes.Equal(set.Image(0), wantCat) {
		t.Errorf("png pixels %v, want %v", set.Image(0), wantCat)
	}
	for _, v := range set.Image(1) {
		if v < 118 || v > 122 {
			t.Errorf("jpeg pixels %v, want about 120", set.Image(1))
			break
		}
	}
	wantEel := []byte{10, 10, 10, 25, 25, 25, 55, 55, 55, 70, 70, 70}
	if !bytes.Equal(set.Image(2), wantEel) {
		t.Errorf("pgm pixels %v, want %v", set.Image(2), wantEel)
	}
	// NCHW floats of the cat: channel 0 (255/255-0.5)/0.5 = 1 at x=0, (0-0.5)/0.5 = -1 at x=1.
	x := make([]float32, 3*12)
	y := make([]int, 3)
	set.Batch([]int{2, 0, 1}, x, y)
	if fmt.Sprint(y) != "[2 0 1]" {
		t.Fatalf("labels %v", y)
	}
	cat := x[12:24]
	want := []float32{1, -1, 1, -1, -0.25, -0.25, -0.25, -0.25, 0, 90.0 / 255 / 2, 0, 90.0 / 255 / 2}
	for i := range want {
		if math.Abs(float64(cat[i]-want[i])) > 1e-6 {
			t.Fatalf("NCHW floats %v, want %v", cat, want)
		}
	}
	hwc := make([]float32, 12)
	set.BatchHWC(0, hwc)
	for i, v := range wantCat {
		if w := (float32(v)/255 - spec.Mean[i%3]) / spec.Std[i%3]; math.Abs(float64(hwc[i]-w)) > 1e-6 {
			t.Fatalf("HWC floats %v", hwc)
		}
	}
	// A grey model reads the same folder: the red PNG becomes luma.
	gset, _, err := Load(dir, grey(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	luma := func(c color.NRGBA) int { return int(color.GrayModel.Convert(c).(color.Gray).Y) }
	if want := (12*luma(color.NRGBA{255, 0, 0, 255}) + 12*luma(color.NRGBA{0, 0, 90, 255}) + 12) / 24; int(gset.Image(0)[0]) != want {
		t.Errorf("grey 1x1 of the half red, half dark blue PNG: %d, want %d", gset.Image(0)[0], want)
	}
}

// FuzzDecodePGM: arbitrary bytes give an image or an error, never a panic.
func FuzzDecodePGM(f *testing.F) {
	f.Add([]byte("P5\n2 2\n255\n\x00\x01\x02\x03"))
	f.Add([]byte("P5 99999 99999 255 "))
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := DecodePGM(bytes.NewReader(b)); err == nil && len(g.Pix) != g.Rect.Dx()*g.Rect.Dy() {
			t.Fatal("bad image")
		}
	})
}

// TestDecodePGMBadHeader: headers whose sizes overflow or exceed MaxPixels are errors (sides of
// 2^32 once made w*h wrap to 0 and image.NewGray panic).
func TestDecodePGMBadHeader(t *testing.T) {
	for _, s := range []string{
		"P5 4294967296 4294967296 255 ",
		"P5 3037000500 3037000500 255 ",
		"P5 -4294967296 -4294967296 255 ",
		"P5 8193 8193 255 ",
		"P5 2 2 0 \x00\x00\x00\x00",
		"P5 2 2 256 \x00\x00\x00\x00",
		"P5 2 2 255 \x00\x00\x00",
		"P6 2 2 255 \x00\x00\x00\x00",
	} {
		if g, err := DecodePGM(bytes.NewReader([]byte(s))); err == nil {
			t.Errorf("%q: accepted %v", s, g.Rect)
		}
	}
}

// imageSeeds returns small valid PNG, JPEG and PGM files.
func imageSeeds(f *testing.F) [][]byte {
	var out [][]byte
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 11)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		f.Fatal(err)
	}
	out = append(out, append([]byte(nil), b.Bytes()...))
	b.Reset()
	if err := jpeg.Encode(&b, img, nil); err != nil {
		f.Fatal(err)
	}
	out = append(out, append([]byte(nil), b.Bytes()...))
	return append(out, []byte("P5\n# c\n3 2\n15\n\x00\x01\x02\x03\x04\x0f"))
}

// FuzzDecodeImage: arbitrary bytes read as a PGM or a PNG/JPEG file give an image of the
// requested channels and of the size the header declares, or an error, never a panic.
func FuzzDecodeImage(f *testing.F) {
	for _, s := range imageSeeds(f) {
		for _, ch := range []uint8{1, 3, 4} {
			f.Add(s, ch, bytes.HasPrefix(s, []byte("P5")))
			f.Add(s[:len(s)/2], ch, bytes.HasPrefix(s, []byte("P5"))) // truncated
		}
	}
	f.Add(hugePNG(f), uint8(1), false)
	f.Add([]byte("GIF89a\x01\x00\x01\x00"), uint8(3), false) // no GIF decoder registered
	f.Add([]byte("P5 4294967296 4294967296 255 "), uint8(1), true)
	f.Fuzz(func(t *testing.T, data []byte, ch uint8, pgm bool) {
		channels := []int{1, 3, 4}[int(ch)%3]
		var w, h int
		if pgm {
			g, err := DecodePGM(bytes.NewReader(data))
			if err == nil {
				w, h = g.Rect.Dx(), g.Rect.Dy()
			}
		} else if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			w, h = cfg.Width, cfg.Height
			if w > 0 && h > 0 && w <= 1<<14 && h <= 1<<14 && w*h > 1<<20 && w*h <= MaxPixels {
				t.Skip("large accepted header: decoding allocates the whole image")
			}
		}
		img, err := decodeImage(bytes.NewReader(data), pgm, channels)
		if err != nil {
			return
		}
		if img.C != channels || img.W != w || img.H != h || w < 1 || h < 1 || w*h > MaxPixels || len(img.Pix) != w*h*channels {
			t.Fatalf("header %dx%d, got %dx%dx%d with %d bytes (channels %d)", w, h, img.W, img.H, img.C, len(img.Pix), channels)
		}
	})
}

// hugePNG returns a PNG header declaring 100000x100000 pixels (no data): over MaxPixels.
func hugePNG(f *testing.F) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		f.Fatal(err)
	}
	p := append([]byte(nil), b.Bytes()[:33]...) // signature + IHDR chunk
	binary.BigEndian.PutUint32(p[16:], 100000)
	binary.BigEndian.PutUint32(p[20:], 100000)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}
