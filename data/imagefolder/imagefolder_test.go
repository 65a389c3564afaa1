package imagefolder

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
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
	set, classes, err := Load(dir, 2, 2)
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
	if _, _, err := Load(t.TempDir(), 2, 2); err == nil {
		t.Error("empty folder accepted")
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
