package mnist

import (
	"errors"
	"os"
	"testing"
)

// TestFashion loads Fashion-MNIST from where Debian's dataset-fashion-mnist installs it (CI installs
// the package; skipped when absent) and checks its published sizes and class balance (7,000
// images per class over train+test, 1,000 per class in test).
func TestFashion(t *testing.T) {
	dir, err := LocateFashion()
	if err != nil {
		if _, serr := os.Stat(FashionDir); errors.Is(serr, os.ErrNotExist) && os.Getenv(EnvFashionDir) == "" {
			t.Skipf("Fashion-MNIST not installed: %v", err)
		}
		t.Fatal(err)
	}
	if d, err := DataDir("fashion"); err != nil || d != dir {
		t.Fatalf("DataDir(fashion) = %q, %v", d, err)
	}
	test, err := LoadTest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 10000 || test.Rows != 28 || test.Cols != 28 {
		t.Fatalf("test set %d images of %dx%d", test.Len(), test.Rows, test.Cols)
	}
	var per [10]int
	for _, l := range test.Labels {
		per[l]++
	}
	for c, n := range per {
		if n != 1000 {
			t.Errorf("class %d (%s): %d test images, want 1000", c, FashionLabels[c], n)
		}
	}
	if _, err := DataDir(t.TempDir()); err == nil {
		t.Error("DataDir accepted an empty folder")
	}
}
