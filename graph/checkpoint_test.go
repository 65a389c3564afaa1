package graph

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

func TestCheckpointRoundTripBitExact(t *testing.T) {
	m := NewModel("m", []int{1, 8, 8}, tensor.Float32, 3)
	m.Conv2d("c", Conv{Out: 4, Kernel: 3, Bias: true})
	m.BatchNorm("bn", 0, 0)
	m.Flatten("")
	m.Linear("fc", 10, true)
	c := &Checkpoint{Step: 12345, Epoch: 3, Seed: 1<<63 + 7, Meta: map[string]string{"qconfig": "W4A4"}}
	m.SaveState(c)
	// special values must survive bit-exactly
	c.PutFloat32s("quant/x.scale", []float32{float32(math.Inf(1)), -0, 1e-45, float32(math.NaN()), 0.1})
	c.Put("opt/f64", tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{math.Pi, -1e-300})))
	path := filepath.Join(t.TempDir(), "ck.bin")
	if err := SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	d, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Step != c.Step || d.Epoch != c.Epoch || d.Seed != c.Seed || d.Meta["qconfig"] != "W4A4" || len(d.Tensors) != len(c.Tensors) {
		t.Fatalf("header mismatch: %+v", d)
	}
	for name, want := range c.Tensors {
		got := d.Tensors[name]
		if !got.Shape().Eq(want.Shape()) || got.Dtype() != want.Dtype() {
			t.Fatalf("%s: %v %v vs %v %v", name, got.Shape(), got.Dtype(), want.Shape(), want.Dtype())
		}
		switch w := want.Data().(type) {
		case []float32:
			g := got.Data().([]float32)
			for i := range w {
				if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
					t.Fatalf("%s[%d] bits differ", name, i)
				}
			}
		case []float64:
			g := got.Data().([]float64)
			for i := range w {
				if math.Float64bits(g[i]) != math.Float64bits(w[i]) {
					t.Fatalf("%s[%d] bits differ", name, i)
				}
			}
		}
	}
	// LoadState restores a differently initialised model exactly.
	m2 := NewModel("m", []int{1, 8, 8}, tensor.Float32, 99)
	m2.Conv2d("c", Conv{Out: 4, Kernel: 3, Bias: true})
	m2.BatchNorm("bn", 0, 0)
	m2.Flatten("")
	m2.Linear("fc", 10, true)
	if err := m2.LoadState(d); err != nil {
		t.Fatal(err)
	}
	for i, p := range m.Params() {
		a, b := p.Value.Data().([]float32), m2.Params()[i].Value.Data().([]float32)
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("%s differs after LoadState", p.Name)
			}
		}
	}
	// shape mismatch is an error, not a panic
	m3 := NewModel("m", []int{1, 8, 8}, tensor.Float32, 1)
	m3.Conv2d("c", Conv{Out: 5, Kernel: 3, Bias: true})
	if err := m3.LoadState(d); err == nil {
		t.Fatal("shape mismatch accepted")
	}
	// no temp files left behind
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries", len(ents))
	}
}

func TestCheckpointCorrupt(t *testing.T) {
	c := &Checkpoint{Step: 1}
	c.PutFloat32s("a", []float32{1, 2, 3})
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, b[:10], append([]byte("XXXXXXXX"), b[8:]...), b[:len(b)-1]} {
		if _, err := DecodeCheckpoint(bad); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("corrupt input accepted: %v", err)
		}
	}
	// Another format: the error says what the file seems to be and what a checkpoint starts with.
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 24)...), `bad magic: a GGUF file (llama.cpp/ollama), not a qatgo checkpoint (which starts with "QATGOCK1")`},
		{[]byte("QATGOMDL\x01\x00\x00\x00"), "bad magic: a qatgo integer model file (.qm), not a qatgo checkpoint"},
		{[]byte("hello"), `bad magic: starts with "hello", not a qatgo checkpoint`},
	} {
		if _, err := DecodeCheckpoint(c.b); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeCheckpoint(%q): %v, want an error containing %q", c.b, err, c.want)
		}
	}
	flip := append([]byte(nil), b...)
	flip[len(flip)-6] ^= 1
	if _, err := DecodeCheckpoint(flip); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("bit flip accepted: %v", err)
	}
}

// FuzzDecodeCheckpoint feeds arbitrary bytes to DecodeCheckpoint and, when they decode, to
// FromCheckpoint (the architecture record is untrusted JSON): no panic, no allocation beyond
// the checkpoint's own tensors (FromCheckpoint's bounds), an accepted checkpoint re-encodes, and
// a rebuilt network saves parameters equal to those it loaded.
func FuzzDecodeCheckpoint(f *testing.F) {
	c := &Checkpoint{Step: 1, Meta: map[string]string{"k": "v"}}
	c.PutFloat32s("a", []float32{1, 2})
	b, _ := c.Encode()
	f.Add(b)
	m := NewModel("m", []int{1, 4, 4}, tensor.Float32, 3)
	m.Conv2d("c", Conv{Out: 2, Kernel: 3, Bias: true})
	m.BatchNorm("bn", 0, 0)
	m.MaxPool2d("mp", 2, 1, 0)
	m.Flatten("")
	m.Linear("fc", 3, true)
	lm, err := NewLM("lm", LMConfig{Vocab: 5, Dim: 4, Layers: 1, Heads: 2, Hidden: 4, Ctx: 3}, tensor.Float32, 1)
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []Network{m, lm} {
		c := &Checkpoint{}
		n.SaveState(c)
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCheckpoint(data)
		if err != nil {
			return
		}
		if _, err := c.Encode(); err != nil {
			t.Fatal(err)
		}
		n, err := FromCheckpoint(c)
		if err != nil {
			return
		}
		d := &Checkpoint{}
		n.SaveState(d)
		for _, p := range n.Params() {
			got, want := d.Tensors["param/"+p.Name], c.Tensors["param/"+p.Name]
			if got == nil || want == nil || got.Shape().TotalSize() != want.Shape().TotalSize() {
				t.Fatalf("parameter %s: saved %v, loaded from %v", p.Name, got, want)
			}
		}
	})
}

// TestFromCheckpointBounds: an architecture record whose parameters or activations are far larger
// than the checkpoint is refused before allocation (a few hundred bytes used to exhaust memory).
func TestFromCheckpointBounds(t *testing.T) {
	for _, tc := range []struct{ arch, want string }{
		{`{"type":"lm","name":"x","lm":{"Vocab":100000,"Dim":100000,"Layers":1,"Heads":2,"Ctx":4}}`, "more than the checkpoint's 64 tensor values"},
		{`{"type":"lm","name":"x","lm":{"Vocab":2,"Dim":2,"Layers":0,"Heads":1,"Ctx":1073741824}}`, "larger than this package handles"},
		{`{"type":"layers","name":"x","input":[4000000000,4000000000,4000000000],"layers":[{"name":"f","kind":"flatten"},{"name":"l","kind":"linear","out":10}]}`, "values per example"},
		{`{"type":"layers","name":"x","input":[1,2,2],"layers":[{"name":"f","kind":"flatten"},{"name":"l","kind":"linear","out":1000000}]}`, "needs more values than the checkpoint's tensors hold"},
		{`{"type":"layers","name":"x","input":[1,2,2],"layers":[{"name":"c","kind":"conv2d","out":1,"kernel":1,"stride":1,"pad":4611686018427387904,"groups":1}]}`, "outside [0, 16777216]"},
		{`{"type":"layers","name":"x","input":[1,2,2],"layers":[{"name":"c","kind":"conv2d","out":1,"kernel":1,"stride":1,"pad":16000000,"groups":1}]}`, "values per example"},
		{`{"type":"layers","name":"x","input":[0,2,2],"layers":[]}`, "empty"},
	} {
		c := &Checkpoint{Meta: map[string]string{MetaArch: tc.arch}}
		c.PutFloat32s("param/pad", make([]float32, 64))
		if _, err := FromCheckpoint(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.arch, err, tc.want)
		}
	}
}
