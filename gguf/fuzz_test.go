package gguf

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, and that whatever it accepts re-encodes and
// decodes to the same content. The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	b, err := sampleFile(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := g.Encode()
		if err != nil {
			t.Fatalf("decoded file does not re-encode: %v", err)
		}
		h, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if !reflect.DeepEqual(g.KV, h.KV) && !nanEqual(g, h) {
			t.Fatalf("metadata changed in a round trip")
		}
		for i := range g.Tensors {
			a, c := g.Tensors[i], h.Tensors[i]
			if a.Name != c.Name || a.Type != c.Type || !reflect.DeepEqual(a.Dims, c.Dims) || !bytes.Equal(a.Data, c.Data) {
				t.Fatalf("tensor %d changed in a round trip", i)
			}
		}
	})
}

// nanEqual compares metadata through their encodings (NaN floats are not DeepEqual to
// themselves).
func nanEqual(g, h *File) bool {
	a, _ := (&File{KV: g.KV}).Encode()
	b, _ := (&File{KV: h.KV}).Encode()
	return bytes.Equal(a, b)
}
