package main

import (
	"strings"
	"testing"
)

// TestValidate (issue 14, item 4): bad flag values are errors before any work.
func TestValidate(t *testing.T) {
	good := options{ckpt: "f.ckpt", out: "out", llamaDir: ".ci/llamacpp", steps: 200, lr: 3e-4, windows: 64, calib: 8, maxBytes: 1 << 20}
	for _, c := range []struct {
		name string
		edit func(*options)
		args []string
		want string
	}{
		{"defaults", func(*options) {}, nil, ""},
		{"steps 0", func(o *options) { o.steps = 0 }, nil, "-steps must be >= 1, got 0"},
		{"lr -1", func(o *options) { o.lr = -1 }, nil, "-lr must be a finite number > 0, got -1"},
		{"lr 0", func(o *options) { o.lr = 0 }, nil, "-lr must be a finite number > 0, got 0"},
		{"windows", func(o *options) { o.windows = 0 }, nil, "-windows must be >= 1"},
		{"calib", func(o *options) { o.calib = 0 }, nil, "-calib must be >= 1"},
		{"max-bytes", func(o *options) { o.maxBytes = -1 }, nil, "-max-bytes must be >= 1"},
		{"ckpt", func(o *options) { o.ckpt = "" }, nil, "-ckpt must not be empty"},
		{"out", func(o *options) { o.out = "" }, nil, "-out must not be empty"},
		{"args", func(*options) {}, []string{"x"}, `unexpected arguments ["x"]`},
	} {
		o := good
		c.edit(&o)
		err := o.validate(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
