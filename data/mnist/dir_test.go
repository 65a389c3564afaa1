package mnist

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSplit writes a 2-image test split to dir under the given file names, gzip-compressed or not.
func writeSplit(t *testing.T, dir, imagesName, labelsName string, compress bool) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{
		{imagesName, idx(magicImages, []uint32{2, 2, 2}, []byte{1, 2, 3, 4, 5, 6, 7, 8})},
		{labelsName, idx(magicLabels, []uint32{2}, []byte{3, 9})},
	} {
		data := f.data
		if compress {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(data)
			zw.Close()
			data = b.Bytes()
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoadTestUncompressedNames (issue 14, item 8): a directory holding the idx files uncompressed,
// under their uncompressed names (t10k-images-idx3-ubyte, as the files unpack), loads like one
// holding the .gz files; so does a directory of .gz names.
func TestLoadTestUncompressedNames(t *testing.T) {
	for _, tc := range []struct {
		name     string
		images   string
		labels   string
		compress bool
	}{
		{"plain", strings.TrimSuffix(TestImagesFile, ".gz"), strings.TrimSuffix(TestLabelsFile, ".gz"), false},
		{"gzip", TestImagesFile, TestLabelsFile, true},
		{"plain bytes under .gz names", TestImagesFile, TestLabelsFile, false},
	} {
		dir := t.TempDir()
		writeSplit(t, dir, tc.images, tc.labels, tc.compress)
		s, err := LoadTest(dir)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if s.Len() != 2 || s.Rows != 2 || s.Labels[1] != 9 || s.Image(1)[3] != 8 {
			t.Errorf("%s: loaded %+v", tc.name, s)
		}
	}
	// Neither name present: the error names both.
	_, err := LoadTest(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), TestImagesFile) || !strings.Contains(err.Error(), strings.TrimSuffix(TestImagesFile, ".gz")+" ") {
		t.Errorf("empty directory: %v", err)
	}
}
