package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestBenchLM(t *testing.T) {
	dir := t.TempDir()
	model := writeLM(t, dir, "lm.qm", lmConfig)
	for _, args := range [][]string{
		{"bench", "-time", "20ms", model},
		{"bench", "-time", "1ms", "-batch", "1", "-threads", "1", model},
	} {
		code, o, e := runMain(args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d: %s", args, code, e)
		}
		for _, re := range []string{
			`model    random-lm \(language model: vocabulary 256, context 32, 1 layers, \d+ ops\)`,
			`memory   weights \d+ bytes resident, KV cache 2048 bytes, session \d+ bytes \(prefill batch (32|1)\)`,
			`prefill  ([0-9]+) tokens/s, [0-9.]+ us/token \(32-token context in batches of (32|1), \d+ runs\)`,
			`decode   ([0-9]+) tokens/s; per token p50 ([0-9.]+) us, p99 ([0-9.]+) us, mean [0-9.]+ us \(batch 1, positions 1..31, (\d+) tokens\)`,
		} {
			m := regexp.MustCompile(re).FindStringSubmatch(o)
			if m == nil {
				t.Errorf("%q: output lacks %s:\n%s", args, re, o)
				continue
			}
			if strings.HasPrefix(m[0], "decode") {
				p50, _ := strconv.ParseFloat(m[2], 64)
				p99, _ := strconv.ParseFloat(m[3], 64)
				n, _ := strconv.Atoi(m[4])
				if tps, _ := strconv.Atoi(m[1]); tps <= 0 || p50 <= 0 || p99 < p50 || n < 31 {
					t.Errorf("%q: implausible decode figures %q", args, m[0])
				}
			}
		}
	}
	// KV cache: 2 (K and V) x 32 positions x 2 heads x 16 dims x 1 layer = 2048 bytes, as above.
	c512 := lmConfig
	c512.Ctx = 512
	m512 := writeLM(t, dir, "ctx512.qm", c512)
	code, o, e := runMain("bench", "-time", "1ms", "-batch", "512", "-max-memory", "1", m512)
	if code != exitOK || !strings.Contains(e, "note: a prefill batch of 512 rows needs") || !strings.Contains(o, "decode") {
		t.Errorf("-max-memory 1: exit %d:\n%s%s", code, o, e)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "-threads", "100000", model}, exitUsage, "-threads 100000 is more than"},
		{[]string{"bench", "-batch", "0", model}, exitUsage, "-batch must be"},
		{[]string{"bench", "-time", "0s", model}, exitUsage, "-time must be positive"},
		{[]string{"bench", "-max-work", "1000", model}, exitFailure, "work"},
	} {
		code, o, e := runMain(tc.args...)
		if code != tc.code || !strings.Contains(e, tc.want) || o != "" {
			t.Errorf("qatgo %q: exit %d, want %d; stderr lacks %q:\nstdout: %q\nstderr: %s", tc.args, code, tc.code, tc.want, o, e)
		}
	}
}
