package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/graph"
)

// damagedCheckpoint rewrites the checkpoint at src with every value of the first tensor whose
// name has the prefix and suffix set to v, and returns the new path and the tensor's name.
func damagedCheckpoint(t *testing.T, src, prefix, suffix string, v float64) (string, string) {
	t.Helper()
	c, err := graph.LoadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range c.Tensors {
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		t.Fatalf("no tensor %s*%s", prefix, suffix)
	}
	sort.Strings(names)
	switch x := c.Tensors[names[0]].Data().(type) {
	case []float32:
		for i := range x {
			x[i] = float32(v)
		}
	case []float64:
		for i := range x {
			x[i] = v
		}
	}
	path := filepath.Join(filepath.Dir(src), strings.NewReplacer("/", "_", ".", "_").Replace(names[0])+".bin")
	if err := graph.SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	return path, names[0]
}

// TestExportRefusesImplausibleCheckpoints (issue 14, item 7): qatgo export of a checkpoint whose
// weights are 1e30 or all zero, or whose observer ranges are zero, used to succeed with exit 0;
// it now fails with exit 1 and a message naming the layer or site, writes nothing, and -force
// writes the model with a warning.
func TestExportRefusesImplausibleCheckpoints(t *testing.T) {
	dir := t.TempDir()
	ck := calibratedCheckpoint(t, dir)
	for _, c := range []struct {
		prefix, suffix string
		value          float64
		want           string
	}{
		{"param/", ".weight", 1e30, "more than 1e+06 in magnitude"},
		{"param/", ".weight", 0, "folded weights are zero"},
		{"quant/", ".out.obs_hi", 0, "has a zero range"},
	} {
		bad, name := damagedCheckpoint(t, ck, c.prefix, c.suffix, c.value)
		if strings.HasSuffix(name, "obs_hi") { // a zero range: both ends 0
			bad2, _ := damagedCheckpoint(t, bad, strings.TrimSuffix(name, "obs_hi"), "obs_lo", 0)
			bad = bad2
		}
		out := filepath.Join(dir, "x.qm")
		code, o, e := runMain("export", "-parity", "0", "-o", out, bad)
		if code != exitFailure || !strings.Contains(e, "implausible model") || !strings.Contains(e, c.want) || !strings.Contains(e, "nothing written") {
			t.Errorf("%s = %g: exit %d\nstdout %s\nstderr %s", name, c.value, code, o, e)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s = %g: a refused export wrote %s", name, c.value, out)
		}
		code, o, e = runMain("export", "-parity", "0", "-force", "-o", out, bad)
		if code != exitOK || !strings.Contains(e, "warning") || !strings.Contains(e, c.want) {
			t.Errorf("%s = %g with -force: exit %d\nstdout %s\nstderr %s", name, c.value, code, o, e)
		}
		if _, err := os.Stat(out); err != nil {
			t.Errorf("-force wrote nothing: %v", err)
		}
		os.Remove(out)
	}
	if code, _, e := runMain("export", "-max-acc-drop", "2", ck); code != exitUsage || !strings.Contains(e, "-max-acc-drop must be in [0,1]") {
		t.Errorf("-max-acc-drop 2: exit %d: %s", code, e)
	}
}
