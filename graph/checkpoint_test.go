package graph

import (
	"errors"
	"math"
	"os"
	"path/filepath"
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
	flip := append([]byte(nil), b...)
	flip[len(flip)-6] ^= 1
	if _, err := DecodeCheckpoint(flip); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("bit flip accepted: %v", err)
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	c := &Checkpoint{Step: 1, Meta: map[string]string{"k": "v"}}
	c.PutFloat32s("a", []float32{1, 2})
	b, _ := c.Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCheckpoint(data)
		if err != nil {
			return
		}
		if _, err := c.Encode(); err != nil {
			t.Fatal(err)
		}
	})
}
