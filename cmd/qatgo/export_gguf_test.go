package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/gguf/llama"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"gorgonia.org/tensor"
)

func lmCheckpoint(t *testing.T, meta map[string]string) (string, *graph.LM) {
	t.Helper()
	m, err := graph.NewLM("tiny", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 16}, tensor.Float32, 9)
	if err != nil {
		t.Fatal(err)
	}
	c := &graph.Checkpoint{Meta: map[string]string{"config": fmt.Sprintf("%+v", m.Config)}}
	for k, v := range meta {
		c.Meta[k] = v
	}
	m.SaveState(c)
	if meta["legacy"] != "" { // a checkpoint from before self-describing ones: Meta["config"] only
		delete(c.Meta, graph.MetaArch)
	}
	path := filepath.Join(t.TempDir(), "lm.ckpt")
	if err := graph.SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	return path, m
}

func TestExportGGUF(t *testing.T) {
	ckpt, m := lmCheckpoint(t, nil)
	legacy, _ := lmCheckpoint(t, map[string]string{"legacy": "1"})
	for _, typ := range []string{"f32", "q8_0", "q4_0", "legacy"} {
		if typ == "legacy" {
			ckpt, typ = legacy, "f32"
		}
		out := filepath.Join(t.TempDir(), "m.gguf")
		var so, se bytes.Buffer
		if code := Main([]string{"export", "-format", "gguf", ckpt, "-o", out, "-type", typ}, &so, &se); code != exitOK {
			t.Fatalf("%s: exit %d: %s", typ, code, se.String())
		}
		if !strings.Contains(so.String(), "wrote "+out) {
			t.Errorf("%s: output %q", typ, so.String())
		}
		w, err := llama.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if w.Config.Dim != 32 || w.Config.Layers != 1 || w.Config.Heads != 2 || w.Config.Hidden != 64 || w.Config.Ctx != 16 {
			t.Fatalf("%s: config %+v", typ, w.Config)
		}
		f, _ := gguf.ReadFile(out)
		want, _ := gguf.ParseTensorType(typ)
		if q := f.Tensor("blk.0.attn_q.weight"); q == nil || q.Type != want {
			t.Fatalf("%s: attn_q %+v", typ, q)
		}
		if typ == "f32" {
			got := w.Tensors["blk.0.ffn_down.weight"]
			for i, v := range m.Param("blk0.mlp.w2.weight").Value.Data().([]float32) {
				if got[i] != v {
					t.Fatalf("ffn_down[%d] = %v, want %v", i, got[i], v)
				}
			}
		}
	}
}

func TestExportGGUFErrors(t *testing.T) {
	ckpt, _ := lmCheckpoint(t, nil)
	rot, _ := lmCheckpoint(t, map[string]string{"hadamard_seed": "7"})
	cnn := filepath.Join(t.TempDir(), "cnn.ckpt")
	c := &graph.Checkpoint{}
	qat.GGMLCNN(1).SaveState(c)
	if err := graph.SaveCheckpoint(cnn, c); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.gguf")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"export", "-format", "gguf", "-type", "q5_k", ckpt, "-o", out}, exitUsage, "-type"},
		{[]string{"export", "-format", "tflite", ckpt}, exitUsage, "-format"},
		{[]string{"export", "-format", "gguf", rot, "-o", out}, exitFailure, "online rotations"},
		{[]string{"export", "-format", "gguf", cnn, "-o", out}, exitFailure, "not a language model"},
		{[]string{"export", "-format", "gguf", filepath.Join(t.TempDir(), "missing.ckpt")}, exitFailure, "missing.ckpt"},
	}
	for _, c := range cases {
		var so, se bytes.Buffer
		if code := Main(c.args, &so, &se); code != c.code || !strings.Contains(se.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, se.String(), c.code, c.msg)
		}
	}
}
