package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func sampleFile(t testing.TB) *File {
	f := &File{}
	f.Set("general.architecture", "llama")
	f.Set("u8", uint8(200))
	f.Set("i8", int8(-3))
	f.Set("u16", uint16(60000))
	f.Set("i16", int16(-30000))
	f.Set("u32", uint32(1<<31))
	f.Set("i32", int32(-1))
	f.Set("f32", float32(1.5))
	f.Set("bool", true)
	f.Set("u64", uint64(1<<40))
	f.Set("i64", int64(-1<<40))
	f.Set("f64", math.Pi)
	f.Set("arr.u8", []uint8{1, 2, 3})
	f.Set("arr.i8", []int8{-1})
	f.Set("arr.u16", []uint16{7})
	f.Set("arr.i16", []int16{-7})
	f.Set("arr.u32", []uint32{1, 2})
	f.Set("arr.i32", []int32{-5, 5})
	f.Set("arr.f32", []float32{0.25})
	f.Set("arr.bool", []bool{true, false})
	f.Set("arr.str", []string{"a", "", "Ġx"})
	f.Set("arr.u64", []uint64{9})
	f.Set("arr.i64", []int64{-9})
	f.Set("arr.f64", []float64{-0.5})
	f.Set("arr.empty", []string{})
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(i) - 20
	}
	for _, c := range []struct {
		name string
		typ  TensorType
		dims []uint64
	}{{"a", F32, []uint64{3}}, {"b", Q8_0, []uint64{32, 2}}, {"c", Q4_0, []uint64{64}}, {"d", F16, []uint64{2, 1, 1, 5}}} {
		n, _ := ByteSize(c.typ, c.dims)
		var data []byte
		switch c.typ {
		case F32:
			data, _ = Quantize(F32, x[:3], 3)
		case F16:
			data, _ = Quantize(F16, x[:10], 2)
		default:
			data, _ = Quantize(c.typ, x, 32)
		}
		if uint64(len(data)) != n {
			t.Fatalf("%s: %d bytes, want %d", c.name, len(data), n)
		}
		if err := f.AddTensor(c.name, c.typ, c.dims, data); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, align := range []uint32{0, 64, 1} {
		f := sampleFile(t)
		if align != 0 {
			f.Set(KeyAlignment, align)
		}
		b, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		g, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.KV, g.KV) {
			t.Fatalf("metadata differs:\n%v\n%v", f.KV, g.KV)
		}
		if len(g.Tensors) != len(f.Tensors) {
			t.Fatalf("%d tensors, want %d", len(g.Tensors), len(f.Tensors))
		}
		a := uint64(DefaultAlignment)
		if align != 0 {
			a = uint64(align)
		}
		// The file ends with the data section: every tensor padded to the alignment.
		start := uint64(len(b))
		for _, ti := range g.Tensors {
			start -= pad(uint64(len(ti.Data)), a)
		}
		off := start
		for i, ti := range g.Tensors {
			if !reflect.DeepEqual(ti, f.Tensors[i]) {
				t.Fatalf("tensor %d differs: %+v vs %+v", i, ti, f.Tensors[i])
			}
			if off%a != 0 || !bytes.Equal(b[off:off+uint64(len(ti.Data))], ti.Data) {
				t.Fatalf("tensor %q: data not at the aligned offset %d", ti.Name, off)
			}
			off += pad(uint64(len(ti.Data)), a)
		}
		b2, err := g.Encode()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs (err %v)", err)
		}
	}
}

// leWriter builds a GGUF byte layout by hand, field by field, independently of the encoder.
type leWriter struct{ bytes.Buffer }

func (w *leWriter) put(vs ...any) *leWriter {
	for _, v := range vs {
		if s, ok := v.(string); ok {
			binary.Write(&w.Buffer, binary.LittleEndian, uint64(len(s)))
			w.WriteString(s)
			continue
		}
		binary.Write(&w.Buffer, binary.LittleEndian, v)
	}
	return w
}

func TestDecodeHandBuiltLayout(t *testing.T) {
	var w leWriter
	w.WriteString("GGUF")
	w.put(uint32(3), uint64(2), uint64(3))
	w.put("general.architecture", uint32(8), "llama")
	w.put("general.alignment", uint32(4), uint32(16))
	w.put("tokens", uint32(9), uint32(8), uint64(2), "x", "yz")
	// tensor "w": F32 [2,3] (24 bytes, padded to 32), tensor "q": Q8_0 [32] at offset 32
	w.put("w", uint32(2), uint64(2), uint64(3), uint32(0), uint64(0))
	w.put("q", uint32(1), uint64(32), uint32(8), uint64(32))
	for w.Len()%16 != 0 {
		w.WriteByte(0)
	}
	for i := 0; i < 6; i++ {
		w.put(float32(i) / 2)
	}
	w.Write(make([]byte, 8))
	w.put(uint16(0x3800)) // d = 0.5
	for i := 0; i < 32; i++ {
		w.put(int8(i - 16))
	}
	w.Write(make([]byte, 14)) // llama.cpp's writer pads the last tensor too
	f, err := Decode(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.String("general.architecture"); err != nil || s != "llama" {
		t.Fatalf("architecture %q, %v", s, err)
	}
	if v, _ := f.Get("tokens"); !reflect.DeepEqual(v, []string{"x", "yz"}) {
		t.Fatalf("tokens %v", v)
	}
	if a, err := f.Alignment(); a != 16 || err != nil {
		t.Fatalf("alignment %d, %v", a, err)
	}
	wt, qt := f.Tensor("w"), f.Tensor("q")
	if wt == nil || qt == nil || !reflect.DeepEqual(wt.Dims, []uint64{2, 3}) || qt.Type != Q8_0 {
		t.Fatalf("tensors %+v %+v", wt, qt)
	}
	xw, err := wt.Float32s()
	if err != nil || !reflect.DeepEqual(xw, []float32{0, 0.5, 1, 1.5, 2, 2.5}) {
		t.Fatalf("w = %v, %v", xw, err)
	}
	xq, err := qt.Float32s()
	if err != nil || xq[0] != -8 || xq[31] != 7.5 {
		t.Fatalf("q = %v, %v", xq, err)
	}
	// Our encoder writes the same bytes for the same content.
	b, err := f.Encode()
	if err != nil || !bytes.Equal(b, w.Bytes()) {
		t.Fatalf("encoder output differs from the hand-built layout (err %v)", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	good, err := sampleFile(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Every strict prefix of a valid file up to the end of its last tensor is an error.
	end := len(good) - 32 + 20 // the last tensor, "d", is F16 [2,1,1,5]: 20 bytes padded to 32
	for n := 0; n < end; n++ {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d bytes: error %v", n, err)
		}
	}
	hdr := func(version uint32, nt, nkv uint64) *leWriter {
		w := &leWriter{}
		w.WriteString("GGUF")
		return w.put(version, nt, nkv)
	}
	tensor := func(name string, dims []uint64, typ uint32, off uint64) *leWriter {
		w := hdr(3, 1, 0)
		w.put(name, uint32(len(dims)))
		for _, d := range dims {
			w.put(d)
		}
		w.put(typ, off)
		w.Write(make([]byte, 64))
		return w
	}
	cases := []struct {
		name string
		b    []byte
		msg  string
	}{
		{"magic", append([]byte("GGUG"), good[4:]...), "magic"},
		{"version 1", hdr(1, 0, 0).Bytes(), "version 1"},
		{"version 4", hdr(4, 0, 0).Bytes(), "version 4"},
		{"huge kv count", hdr(3, 0, 1<<62).Bytes(), "key-value count"},
		{"huge tensor count", hdr(3, 1<<60, 0).Bytes(), "tensor count"},
		{"huge string", hdr(3, 0, 1).put(uint64(1<<60), uint64(0)).Bytes(), "exceeds"},
		{"empty key", hdr(3, 0, 1).put("", uint32(4), uint32(1)).Bytes(), "empty"},
		{"duplicate key", hdr(3, 0, 2).put("k", uint32(4), uint32(1), "k", uint32(4), uint32(2)).Bytes(), "duplicate key"},
		{"unknown value type", hdr(3, 0, 1).put("k", uint32(13), uint32(1)).Bytes(), "unknown value type"},
		{"bool 2", hdr(3, 0, 1).put("k", uint32(7), uint8(2)).Bytes(), "bool"},
		{"nested array", hdr(3, 0, 1).put("k", uint32(9), uint32(9), uint64(1)).Bytes(), "array of arr"},
		{"huge array", hdr(3, 0, 1).put("k", uint32(9), uint32(4), uint64(1<<40)).Bytes(), "cannot fit"},
		{"alignment type", hdr(3, 0, 1).put("general.alignment", uint32(5), int32(32)).Bytes(), "must be u32"},
		{"alignment 24", hdr(3, 0, 1).put("general.alignment", uint32(4), uint32(24)).Bytes(), "power of 2"},
		{"zero dims", tensor("t", nil, 0, 0).Bytes(), "dimensions"},
		{"five dims", tensor("t", []uint64{1, 1, 1, 1, 1}, 0, 0).Bytes(), "5 dimensions"},
		{"dim 0", tensor("t", []uint64{0}, 0, 0).Bytes(), "dimension 0 is 0"},
		{"overflow", tensor("t", []uint64{1 << 40, 1 << 40}, 0, 0).Bytes(), "overflow"},
		{"larger than file", tensor("t", []uint64{1 << 20}, 0, 0).Bytes(), "larger than the file"},
		{"unknown type", tensor("t", []uint64{4}, 99, 0).Bytes(), "unknown tensor type"},
		{"row not blocks", tensor("t", []uint64{16}, 8, 0).Bytes(), "multiple of 32"},
		{"offset", tensor("t", []uint64{4}, 0, 32).Bytes(), "offset 32, want 0"},
		{"data beyond file", tensor("t", []uint64{24}, 0, 0).Bytes(), "beyond the end"},
		{"long name", tensor(strings.Repeat("n", 64), []uint64{4}, 0, 0).Bytes(), "name of 64 bytes"},
		{"duplicate tensor", func() []byte {
			w := hdr(3, 2, 0)
			w.put("t", uint32(1), uint64(4), uint32(0), uint64(0), "t", uint32(1), uint64(4), uint32(0), uint64(32))
			w.Write(make([]byte, 96))
			return w.Bytes()
		}(), "duplicate tensor name"},
	}
	for _, c := range cases {
		_, err := Decode(c.b)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.msg)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	cases := map[string]func(f *File){
		"duplicate key":    func(f *File) { f.KV = append(f.KV, KV{"u8", uint8(1)}) },
		"empty key":        func(f *File) { f.KV = append(f.KV, KV{"", uint8(1)}) },
		"bad value":        func(f *File) { f.Set("x", 3) },
		"duplicate tensor": func(f *File) { f.Tensors = append(f.Tensors, f.Tensors[0]) },
		"short data":       func(f *File) { f.Tensors[1].Data = f.Tensors[1].Data[1:] },
		"alignment":        func(f *File) { f.Set(KeyAlignment, uint32(3)) },
	}
	for name, mutate := range cases {
		f := sampleFile(t)
		mutate(f)
		var b bytes.Buffer
		if n, err := f.WriteTo(&b); err == nil || n != 0 || b.Len() != 0 {
			t.Errorf("%s: wrote %d bytes, error %v", name, n, err)
		}
	}
}
