package main

import (
	"strings"
	"testing"
)

// TestFlagValuesRejected (issue 14, item 4): every numeric flag of the commands is checked before
// any work; a bad value is a usage error (exit 2) naming the flag.
func TestFlagValuesRejected(t *testing.T) {
	model := mnistLinear(t, t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "-batch", "0", model}, "-batch must be in [1,65536], got 0"},
		{[]string{"bench", "-batch", "70000", model}, "-batch must be in [1,65536]"},
		{[]string{"bench", "-time", "0s", model}, "-time must be positive"},
		{[]string{"bench", "-max-memory", "-1", model}, "-max-memory must be in"},
		{[]string{"bench", "-max-work", "-1", model}, "-max-work must be >= 0"},
		{[]string{"bench", "-threads", "-1", model}, "-threads must be >= 0"},
		{[]string{"eval", "-batch", "0", model}, "-batch must be in"},
		{[]string{"eval", "-n", "-5", model}, "-n must be >= 0"},
		{[]string{"eval", "-max-memory", "0", model}, "-max-memory must be in"},
		{[]string{"run", "-k", "0", model, model}, "-k must be at least 1"},
		{[]string{"run", "-max-work", "-2", model, model}, "-max-work must be >= 0"},
		{[]string{"export", "-requant", "tflite", "x.ckpt"}, "-requant must be default or onnxruntime"},
		{[]string{"export", "-parity", "-1", "x.ckpt"}, "-parity must be >= 0"},
		{[]string{"export", "-min-within1", "1.5", "x.ckpt"}, "-min-within1 and -min-agree must be in [0,1]"},
		{[]string{"export", "-min-within1", "NaN", "x.ckpt"}, "-min-within1 and -min-agree must be in [0,1]"},
		{[]string{"export", "-min-agree", "-0.1", "x.ckpt"}, "-min-within1 and -min-agree must be in [0,1]"},
		{[]string{"export", "-max-lsb", "-1", "x.ckpt"}, "-max-lsb and -max-local-lsb must be >= 0"},
		{[]string{"export", "-calib-batches", "0", "x.ckpt"}, "-calib-batches must be >= 1"},
	} {
		code, o, e := runMain(c.args...)
		if code != exitUsage || !strings.Contains(e, c.want) || o != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 2 and %q", c.args, code, e, o, c.want)
		}
	}
}
