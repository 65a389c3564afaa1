package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qmodel"
)

func TestInspectLM(t *testing.T) {
	dir := t.TempDir()
	c4 := lmConfig
	c4.Bits, c4.Group = 4, 16
	for _, c := range []struct {
		cfg    lmref.Config
		scheme string
	}{{lmConfig, "int8 per-channel"}, {c4, "int4 g16"}} {
		model := writeLM(t, dir, "lm.qm", c.cfg)
		code, o, e := runMain("inspect", model)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, e)
		}
		// Hand counts for Vocab 256, Dim 32, 1 layer, 2 heads of 16, hidden 64, context 32:
		// parameters 256*32 (embedding) + 4*32*32 (attention) + 2*64*32 + 32*64 (MLP) + 3*32
		// (norm gains) + 256*32 (head) = 26720; MACs per token 4096+4096+2048+8192 = 18432;
		// KV cache 2 * 32 positions * 2 heads * 16 = 2048 bytes.
		for _, want := range []string{
			"language model: vocabulary 256, context 32, 1 layers, dimension 32, 2 heads (2 KV heads) of 16, SwiGLU hidden 64",
			"parameters 26720 (0.03M",
			"compute   18432 multiply-accumulates per token",
			"weight bits Embedding " + c.scheme + " x1; Linear " + c.scheme + " x7; LMHead " + c.scheme + " x1",
			"memory    KV cache 2048 bytes per session (int8, full context); weights ",
			"heads 2, KV heads 2, head dim 16, context 32, int8 KV cache",
			"heads 2, head dim 16, theta 10000, context 32",
			"eps 1e-05",
			"(" + c.scheme + ", ",
			"units per token at a full context",
		} {
			if !strings.Contains(o, want) {
				t.Errorf("%s: inspect output lacks %q:\n%s", c.scheme, want, o)
			}
		}
	}
}

// TestLMStringsEscaped: an LM's name and op names reach the terminal escaped in every command.
func TestLMStringsEscaped(t *testing.T) {
	dir := t.TempDir()
	m, err := lmref.RandomLM(lmConfig, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Name = hostileString
	m.Ops[1].Name += hostileString
	model := filepath.Join(dir, "evil.qm")
	if err := qmodel.WriteFile(model, m); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "t.txt")
	writeFile(t, text, []byte("some text to score"))
	for _, args := range [][]string{
		{"inspect", "-tensors", model},
		{"bench", "-time", "1ms", model},
		{"eval", "-text", text, model},
		{"run", model, text},
		{"eval", model},
	} {
		code, o, e := runMain(args...)
		if strings.ContainsAny(o+e, "\x1b\x07\u202e") || !strings.Contains(o+e, `evil\x1b[2J`) {
			t.Errorf("%q (exit %d) printed a raw escape or no escaped name:\n%q\n%q", args, code, o, e)
		}
	}
}
