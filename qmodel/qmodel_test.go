package qmodel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

func randInt8s(r *rand.Rand, n int, lim int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(r.IntN(2*lim+1) - lim)
	}
	return v
}

// tinyModel builds a small model that uses every op kind, int4 and int8 weights, per-tensor and
// per-channel scales.
func tinyModel(t testing.TB) *Model {
	r := rand.New(rand.NewPCG(1, 2))
	b := NewBuilder("tiny")
	b.SetProducer("qmodel test")
	b.SetLabels([]string{"a", "b", "c"})
	b.SetMeta("accuracy", "0.5")
	b.SetMeta("dataset", "none")
	x := b.Input("image", Uint8, []int{6, 6, 1}, PerTensor(1.0/255, 0))
	q := b.Quantize("quant", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	c1 := b.Conv2D("conv1", q, Weights{Values: randInt8s(r, 2*3*3*1, 127), Shape: []int{2, 3, 3, 1}, Scales: []float32{0.01, 0.02}},
		[]int32{100, -50}, Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: ActReLU}, quant.Params{Scale: 0.05, ZeroPoint: -128})
	p1 := b.MaxPool2D("pool1", c1, PoolOptions{KernelH: 2, KernelW: 2})
	d := b.Conv2D("dw", p1, Weights{Values: randInt8s(r, 2*3*3, 127), Shape: []int{2, 3, 3, 1}, Scales: []float32{0.03}},
		nil, Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 2}, quant.Params{Scale: 0.04, ZeroPoint: 3})
	a := b.Add("add", p1, d, ActReLU6, quant.Params{Scale: 0.06, ZeroPoint: -20})
	p2 := b.AvgPool2D("pool2", a, PoolOptions{KernelH: 3, KernelW: 3})
	f := b.Reshape("flat", p2, []int{2})
	fc := b.FullyConnected("fc", f, Weights{Values: randInt8s(r, 3*2, 7), Shape: []int{3, 2}, Scales: []float32{0.1, 0.2, 0.3}, Int4: true},
		[]int32{1, 2, 3}, ActNone, quant.Params{Scale: 0.1, ZeroPoint: 0})
	s := b.Softmax("softmax", fc)
	o := b.Dequantize("probs", s)
	b.Output(o)
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	m := tinyModel(t)
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, got) {
		t.Fatalf("decoded model differs:\n got %+v\nwant %+v", got, m)
	}
	enc2, err := Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatal("re-encoding gives different bytes")
	}
	// Alignment of every constant in the file.
	dataOff := binary.LittleEndian.Uint64(enc[headerFixed+3*sectionEntry+8:])
	for i := range got.Tensors {
		if d := got.Tensors[i].Data; d != nil {
			idx := bytes.Index(enc[dataOff:], d)
			if idx < 0 {
				t.Fatalf("tensor %d data not found", i)
			}
		}
	}
	if dataOff%64 != 0 {
		t.Fatalf("data section at %d, not 64-aligned", dataOff)
	}
}

func TestDataAlignment(t *testing.T) {
	m := tinyModel(t)
	enc, _ := Encode(m)
	dataOff := binary.LittleEndian.Uint64(enc[headerFixed+3*sectionEntry+8:])
	r := &reader{b: enc[binary.LittleEndian.Uint64(enc[headerFixed+sectionEntry+8:]):], sec: "tensor"}
	_ = r
	// Parse the tensor table again to read the stored offsets.
	tensOff := binary.LittleEndian.Uint64(enc[headerFixed+sectionEntry+8:])
	tensLen := binary.LittleEndian.Uint64(enc[headerFixed+sectionEntry+16:])
	r = &reader{b: enc[tensOff : tensOff+tensLen], sec: "tensor"}
	n := int(r.u32())
	seen := 0
	for i := 0; i < n; i++ {
		r.str()
		r.u8()
		rank := int(r.u8())
		for j := 0; j < rank; j++ {
			r.u32()
		}
		if nq := int(r.u32()); nq > 0 {
			r.take(4 + 8*nq)
		}
		if r.u8() == 1 {
			off := r.u64()
			r.u64()
			if (dataOff+off)%64 != 0 {
				t.Errorf("tensor %d data at file offset %d, not 64-aligned", i, dataOff+off)
			}
			seen++
		}
	}
	if r.err != nil || seen == 0 {
		t.Fatalf("parse: %v, %d constants", r.err, seen)
	}
}

func TestWriteReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.qm")
	m := tinyModel(t)
	if err := WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, got) {
		t.Fatal("file round trip differs")
	}
	// Overwrite with an invalid model: the old file must survive, no temp files left.
	bad := tinyModel(t)
	bad.Tensors[0].Quant.Scales[0] = float32(math.NaN())
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("invalid model written")
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatalf("old file damaged: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1 (temp file left?)", len(ents))
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.qm")); err == nil {
		t.Fatal("missing file read")
	}
	// A directory: the error names the path once (the *os.PathError already carries it).
	if _, err := ReadFile(dir); err == nil || strings.Count(err.Error(), dir) != 1 {
		t.Errorf("read a directory: %v, want an error naming %s once", err, dir)
	}
	nowhere := filepath.Join(dir, "no-such-dir", "m.qm")
	if err := WriteFile(nowhere, m); err == nil || !strings.Contains(err.Error(), "cannot write "+nowhere) {
		t.Errorf("write into a missing directory: %v, want an error naming %s", err, nowhere)
	}
}

// fixCRCs recomputes every checksum so that a test can exercise the validation behind them.
func fixCRCs(b []byte) {
	for i := 0; i < numSections; i++ {
		e := b[headerFixed+i*sectionEntry:]
		off, n := binary.LittleEndian.Uint64(e[8:]), binary.LittleEndian.Uint64(e[16:])
		if off <= uint64(len(b)) && n <= uint64(len(b))-off {
			binary.LittleEndian.PutUint32(e[24:], crc32.Checksum(b[off:off+n], castagnoli))
		}
	}
	binary.LittleEndian.PutUint32(b[headerLen:], crc32.Checksum(b[:headerLen], castagnoli))
}

func TestDecodeCorruptFiles(t *testing.T) {
	valid, err := Encode(tinyModel(t))
	if err != nil {
		t.Fatal(err)
	}
	sec := func(i int) (uint64, uint64) {
		e := valid[headerFixed+i*sectionEntry:]
		return binary.LittleEndian.Uint64(e[8:]), binary.LittleEndian.Uint64(e[16:])
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), valid...)) }
	r := rand.New(rand.NewPCG(3, 4))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"garbage", garbage, "bad magic"},
		{"magic only", []byte(Magic), "shorter than"},
		{"truncated header", valid[:100], "shorter than"},
		{"truncated in metadata", valid[:headerCRCEnd+20], "file truncated?"},
		{"truncated in data", valid[:len(valid)-1], "file truncated?"},
		{"trailing bytes", append(append([]byte(nil), valid...), 0), "trailing"},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), "bad magic"},
		{"a GGUF file", append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 24)...), `bad magic "GGUF\x03\x00\x00\x00": a GGUF file`},
		{"a checkpoint", []byte("QATGOCK1"), "a qatgo checkpoint, not a qatgo model file"},
		{"future version", mod(func(b []byte) []byte { b[8] = 2; fixCRCs(b); return b }), "version 2"},
		{"header bit flip", mod(func(b []byte) []byte { b[20] ^= 1; return b }), "header checksum"},
		{"metadata bit flip", mod(func(b []byte) []byte { o, _ := sec(0); b[o] ^= 0x10; return b }), "metadata section checksum"},
		{"tensor bit flip", mod(func(b []byte) []byte { o, _ := sec(1); b[o+9] ^= 0x10; return b }), "tensor section checksum"},
		{"op bit flip", mod(func(b []byte) []byte { o, _ := sec(2); b[o+5] ^= 0x80; return b }), "op section checksum"},
		{"data bit flip", mod(func(b []byte) []byte { o, n := sec(3); b[o+n/2] ^= 1; return b }), "data section checksum"},
		{"nonzero padding", mod(func(b []byte) []byte { b[headerCRCEnd] = 1; fixCRCs(b); return b }), "padding"},
		{"section out of file", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[headerFixed+3*sectionEntry+16:], 1<<40)
			fixCRCs(b)
			return b
		}), "past the end"},
		{"section offset out of file", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[headerFixed+3*sectionEntry+8:], 1<<40)
			fixCRCs(b)
			return b
		}), "past the end"},
		{"unaligned section", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[headerFixed+1*sectionEntry+8:], 1+binary.LittleEndian.Uint64(b[headerFixed+1*sectionEntry+8:]))
			fixCRCs(b)
			return b
		}), "misplaced"},
		{"huge tensor count", mod(func(b []byte) []byte {
			o, _ := sec(1)
			binary.LittleEndian.PutUint32(b[o:], 0xffffffff)
			fixCRCs(b)
			return b
		}), "tensors need at least"},
		{"huge op count", mod(func(b []byte) []byte {
			o, _ := sec(2)
			binary.LittleEndian.PutUint32(b[o:], 1<<30)
			fixCRCs(b)
			return b
		}), "ops need at least"},
		{"huge string", mod(func(b []byte) []byte {
			o, _ := sec(0)
			binary.LittleEndian.PutUint32(b[o:], 1<<31)
			fixCRCs(b)
			return b
		}), "string of"},
		{"string past end", mod(func(b []byte) []byte {
			o, _ := sec(0)
			binary.LittleEndian.PutUint32(b[o:], 60000)
			fixCRCs(b)
			return b
		}), "need 60000 bytes"},
		{"section kinds swapped", mod(func(b []byte) []byte { b[headerFixed] = 2; fixCRCs(b); return b }), "kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.b)
			if err == nil {
				t.Fatalf("decoded %v", m.Name)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// Every truncation of a valid file fails.
	for n := 0; n < len(valid); n++ {
		if _, err := Decode(valid[:n]); err == nil {
			t.Fatalf("truncation to %d bytes decoded", n)
		}
	}
}

// TestDecodeInvalidModels encodes well-formed files (valid checksums) of invalid models: Decode
// must reject each with a validation error naming the problem.
func TestDecodeInvalidModels(t *testing.T) {
	cases := []struct {
		name string
		mut  func(m *Model)
		want string
	}{
		{"NaN scale", func(m *Model) { m.Tensors[1].Quant.Scales[0] = float32(math.NaN()) }, "finite and > 0"},
		{"zero scale", func(m *Model) { m.Tensors[1].Quant.Scales[0] = 0 }, "finite and > 0"},
		{"infinite scale", func(m *Model) { m.Tensors[1].Quant.Scales[0] = float32(math.Inf(1)) }, "finite and > 0"},
		{"negative scale", func(m *Model) { m.Tensors[1].Quant.Scales[0] = -1 }, "finite and > 0"},
		{"int8 zero point out of range", func(m *Model) { m.Tensors[1].Quant.ZeroPoints[0] = 128 }, "zero point"},
		{"uint8 zero point out of range", func(m *Model) { m.Tensors[0].Quant.ZeroPoints[0] = -1 }, "zero point"},
		{"asymmetric weights", func(m *Model) { m.Tensors[m.TensorByName("conv1/weights")].Quant.ZeroPoints[1] = 1 }, "symmetric"},
		{"weight -128", func(m *Model) { m.Tensors[m.TensorByName("conv1/weights")].Data[0] = 0x80 }, "narrow range"},
		{"int4 weight -8", func(m *Model) { m.Tensors[m.TensorByName("fc/weights")].Data[0] = 0x08 }, "narrow range"},
		{"shift out of range", func(m *Model) { m.Tensors[m.TensorByName("conv1")].Quant.Scales[0] = 1e-30 }, "too large"},
		{"per-channel count", func(m *Model) {
			w := &m.Tensors[m.TensorByName("conv1/weights")]
			w.Quant.Scales = append(w.Quant.Scales, 1)
			w.Quant.ZeroPoints = append(w.Quant.ZeroPoints, 0)
		}, "scales for axis"},
		{"bad axis", func(m *Model) { m.Tensors[m.TensorByName("conv1/weights")].Quant.Axis = 7 }, "axis"},
		{"bad dtype", func(m *Model) { m.Tensors[1].DType = 99 }, "invalid data type"},
		{"zero dimension", func(m *Model) { m.Tensors[0].Shape[0] = 0 }, "dimension"},
		{"rank 0", func(m *Model) { m.Tensors[0].Shape = []int{} }, "rank"},
		{"huge activation", func(m *Model) { m.Tensors[0].Shape = []int{1 << 13, 1 << 13, 1} }, "elements"},
		{"data size", func(m *Model) {
			w := &m.Tensors[m.TensorByName("conv1/weights")]
			w.Shape = []int{2, 3, 3, 2}
		}, "data bytes"},
		{"duplicate name", func(m *Model) { m.Tensors[2].Name = m.Tensors[1].Name }, "both named"},
		{"use before def", func(m *Model) { m.Ops[0], m.Ops[1] = m.Ops[1], m.Ops[0] }, "before it is produced"},
		{"output defined twice", func(m *Model) { m.Ops[2].Outputs[0] = m.Ops[1].Outputs[0] }, "already defined"},
		{"input index out of range", func(m *Model) { m.Ops[1].Inputs[0] = 1000 }, "out of range"},
		{"weights not constant", func(m *Model) { m.Ops[1].Inputs[1] = m.Ops[0].Outputs[0] }, "must be a constant"},
		{"constant as activation", func(m *Model) { m.Ops[1].Inputs[0] = m.Ops[1].Inputs[1] }, "is a constant"},
		{"conv output shape", func(m *Model) { m.Ops[1].PadTop = 0 }, "shape"},
		{"pad >= kernel", func(m *Model) { m.Ops[1].PadLeft = 3 }, "padding"},
		{"zero stride", func(m *Model) { m.Ops[1].StrideH = 0 }, "strides"},
		{"bad groups", func(m *Model) { m.Ops[1].Groups = 3 }, "groups"},
		{"kernel on conv", func(m *Model) { m.Ops[1].KernelH = 3 }, "kernel size"},
		{"stride on add", func(m *Model) { m.Ops[4].StrideH = 1 }, "stride"},
		{"activation on reshape", func(m *Model) { m.Ops[6].Act = ActReLU }, "fused activation"},
		{"bad activation", func(m *Model) { m.Ops[1].Act = 9 }, "invalid fused activation"},
		{"unknown op", func(m *Model) { m.Ops[6].Kind = 77 }, "unknown op kind"},
		{"pool changes qparams", func(m *Model) { m.Tensors[m.TensorByName("pool1")].Quant.Scales[0] = 1 }, "pools keep"},
		{"reshape count", func(m *Model) { m.Tensors[m.TensorByName("flat")].Shape = []int{3} }, "element count"},
		{"softmax params", func(m *Model) { m.Tensors[m.TensorByName("softmax")].Quant.ZeroPoints[0] = 0 }, "1/256"},
		{"bias scale", func(m *Model) { m.Tensors[m.TensorByName("conv1/bias")].Quant.Scales[0] = 1 }, "bias"},
		{"bias shape", func(m *Model) {
			b := &m.Tensors[m.TensorByName("fc/bias")]
			b.Shape = []int{2}
			b.Data = b.Data[:8]
		}, "bias"},
		{"no outputs", func(m *Model) { m.Outputs = nil }, "no outputs"},
		{"output constant", func(m *Model) { m.Outputs = []int{m.TensorByName("fc/bias")} }, "constant"},
		{"input constant", func(m *Model) { m.Inputs = []int{m.TensorByName("fc/bias")} }, "constant"},
		{"dangling activation", func(m *Model) {
			m.Tensors = append(m.Tensors, Tensor{Name: "dangling", DType: Int8, Shape: []int{1}, Quant: PerTensor(1, 0)})
		}, "neither"},
		{"float with qparams", func(m *Model) { m.Tensors[m.TensorByName("probs")].Quant = PerTensor(1, 0) }, "float32 tensor with"},
		{"invalid UTF-8 label", func(m *Model) { m.Labels[0] = "\xff" }, "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel(t)
			tc.mut(m)
			if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error mentioning %q", err, tc.want)
			}
			if _, err := Encode(m); err == nil {
				t.Fatal("Encode accepted an invalid model")
			}
			got, err := Decode(encode(m))
			if err == nil {
				t.Fatalf("Decode accepted %v", got.Name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestActivationRange(t *testing.T) {
	for _, tc := range []struct {
		act    Activation
		p      quant.Params
		lo, hi int32
	}{
		{ActNone, quant.Params{Scale: 0.1, ZeroPoint: 5}, -128, 127},
		{ActReLU, quant.Params{Scale: 0.1, ZeroPoint: 5}, 5, 127},
		{ActReLU6, quant.Params{Scale: 0.1, ZeroPoint: 5}, 5, 65},
		{ActReLU6, quant.Params{Scale: 0.01, ZeroPoint: -128}, -128, 127},
		{ActReLU, quant.Params{Scale: 0.1, ZeroPoint: -200}, -128, 127},
	} {
		lo, hi := ActivationRange(tc.act, tc.p)
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("%v %v: [%d,%d], want [%d,%d]", tc.act, tc.p, lo, hi, tc.lo, tc.hi)
		}
	}
}

func TestAddMultipliers(t *testing.T) {
	a, b, o, err := AddMultipliers(0.02, 0.05, 0.04)
	if err != nil {
		t.Fatal(err)
	}
	// Product of the chain equals the real ratios sA/sOut and sB/sOut (2^20 cancels).
	ra := a.Float() * o.Float() * (1 << AddLeftShift)
	rb := b.Float() * o.Float() * (1 << AddLeftShift)
	if math.Abs(ra-0.5) > 1e-6 || math.Abs(rb-1.25) > 1e-6 { // float32 scales and Q31 rounding
		t.Fatalf("chain ratios %v %v, want 0.5 1.25", ra, rb)
	}
}

func TestBuilderErrors(t *testing.T) {
	b := NewBuilder("bad")
	x := b.Input("x", Int8, []int{4}, PerTensor(1, 0))
	b.FullyConnected("fc", x, Weights{Values: []int8{1, 2, 3}, Shape: []int{2, 2}, Scales: []float32{1}}, nil, ActNone, quant.Params{Scale: 1})
	if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), "3 weight values") {
		t.Fatalf("got %v", err)
	}
	b = NewBuilder("bad2")
	b.Conv2D("c", TensorID(5), Weights{}, nil, Conv2DOptions{}, quant.Params{Scale: 1})
	if _, err := b.Build(); err == nil {
		t.Fatal("unknown tensor accepted")
	}
}

func TestTensorValues(t *testing.T) {
	m := tinyModel(t)
	w := &m.Tensors[m.TensorByName("fc/weights")]
	v, err := w.Int8Values()
	if err != nil || len(v) != 6 {
		t.Fatal(v, err)
	}
	if !bytes.Equal(Int4Data(v), w.Data) {
		t.Fatal("int4 unpack/pack mismatch")
	}
	bias, err := m.Tensors[m.TensorByName("fc/bias")].Int32Values()
	if err != nil || !reflect.DeepEqual(bias, []int32{1, 2, 3}) {
		t.Fatal(bias, err)
	}
	f := Tensor{Name: "f", DType: Float32, Shape: []int{2}, Data: Float32Data([]float32{1.5, -2})}
	fv, err := f.Float32Values()
	if err != nil || !reflect.DeepEqual(fv, []float32{1.5, -2}) {
		t.Fatal(fv, err)
	}
	if _, err := f.Int8Values(); err == nil {
		t.Fatal("float as int8")
	}
}

// TestWriteSeedCorpus regenerates testdata/fuzz/FuzzDecode when QMODEL_WRITE_CORPUS=1.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("QMODEL_WRITE_CORPUS") != "1" {
		t.Skip("set QMODEL_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	for name, b := range seedFiles(t) {
		s := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join("testdata", "fuzz", "FuzzDecode", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func seedFiles(t testing.TB) map[string][]byte {
	valid, _ := Encode(tinyModel(t))
	b := NewBuilder("fc-only")
	x := b.Input("x", Float32, []int{3}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.1, ZeroPoint: 1})
	fc := b.FullyConnected("fc", q, Weights{Values: []int8{1, -2, 3, 4, 5, -6}, Shape: []int{2, 3}, Scales: []float32{0.5}}, []int32{7, -7}, ActReLU, quant.Params{Scale: 0.2})
	b.Output(b.Dequantize("y", fc))
	small, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	smallEnc, _ := Encode(small)
	lmEnc, _ := Encode(tinyLM(t))
	flipped := append([]byte(nil), valid...)
	flipped[len(flipped)/2] ^= 0xff
	return map[string][]byte{
		"valid-tiny":  valid,
		"valid-fc":    smallEnc,
		"valid-lm":    lmEnc,
		"truncated":   valid[:len(valid)/3],
		"bitflip":     flipped,
		"header-only": valid[:headerCRCEnd],
	}
}

func FuzzDecode(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzOne(t, b)
		// Most mutations break a checksum; also decode the bytes with every checksum repaired so
		// that the fuzzer reaches the parsers and validation behind the CRCs.
		if len(b) >= headerCRCEnd {
			fixed := append([]byte(nil), b...)
			fixCRCs(fixed)
			fuzzOne(t, fixed)
		}
	})
}

func fuzzOne(t *testing.T, b []byte) {
	m, err := Decode(b)
	if err != nil {
		return
	}
	// Anything that decodes must re-encode and decode to the same model, and encode canonically.
	enc, err := Encode(m)
	if err != nil {
		t.Fatalf("decoded model does not encode: %v", err)
	}
	m2, err := Decode(enc)
	if err != nil {
		t.Fatalf("re-encoded model does not decode: %v", err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatal("round trip changed the model")
	}
	enc2, _ := Encode(m2)
	if !bytes.Equal(enc, enc2) {
		t.Fatal("encoding not deterministic")
	}
}

// TestSizeVersusFloat32 checks the size targets on the ggml MNIST CNN shape: int8 weights about
// 4x smaller than float32, int4 about 8x (constants; the int32 biases count in both).
func TestSizeVersusFloat32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		int4     bool
		minRatio float64
	}{{false, 3.9}, {true, 7.5}} {
		lim := 127
		if tc.int4 {
			lim = 7
		}
		b := NewBuilder("cnn")
		x := b.Input("image", Uint8, []int{28, 28, 1}, PerTensor(1.0/255, 0))
		q := b.Quantize("q", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
		pad := Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: ActReLU}
		c1 := b.Conv2D("conv1", q, Weights{Values: randInt8s(r, 72, lim), Shape: []int{8, 3, 3, 1}, Scales: []float32{0.01}, Int4: tc.int4}, make([]int32, 8), pad, quant.Params{Scale: 0.02, ZeroPoint: -128})
		p1 := b.MaxPool2D("pool1", c1, PoolOptions{KernelH: 2, KernelW: 2})
		c2 := b.Conv2D("conv2", p1, Weights{Values: randInt8s(r, 1152, lim), Shape: []int{16, 3, 3, 8}, Scales: []float32{0.01}, Int4: tc.int4}, make([]int32, 16), pad, quant.Params{Scale: 0.02, ZeroPoint: -128})
		p2 := b.MaxPool2D("pool2", c2, PoolOptions{KernelH: 2, KernelW: 2})
		f := b.Reshape("flat", p2, []int{784})
		d := b.FullyConnected("dense", f, Weights{Values: randInt8s(r, 7840, lim), Shape: []int{10, 784}, Scales: []float32{0.01}, Int4: tc.int4}, make([]int32, 10), ActNone, quant.Params{Scale: 0.1})
		b.Output(b.Dequantize("logits", d))
		m, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		floatBytes := 0
		for i := range m.Tensors {
			if m.Tensors[i].IsConst() {
				floatBytes += 4 * m.Tensors[i].NumElements()
			}
		}
		enc, _ := Encode(m)
		ratio := float64(floatBytes) / float64(m.ConstBytes())
		t.Logf("int4=%v: constants %d bytes vs %d as float32 (%.2fx), file %d bytes", tc.int4, m.ConstBytes(), floatBytes, ratio, len(enc))
		if ratio < tc.minRatio {
			t.Errorf("int4=%v: only %.2fx smaller than float32", tc.int4, ratio)
		}
	}
}
