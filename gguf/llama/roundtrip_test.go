package llama

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/qatgo/qatgo/gguf"
)

// A file qatgo wrote reads back bit-identically: F32 weights equal the LM's, quantized weights
// equal the dequantized values, tokenizer metadata survives, and the rebuilt LM has the same
// parameters.
func TestWriteReadRoundTrip(t *testing.T) {
	m := testLM(t, 3)
	w, err := FromLM(m)
	if err != nil {
		t.Fatal(err)
	}
	_, sh := w.Config.tensorShapes()
	for _, typ := range []gguf.TensorType{gguf.F32, gguf.F16, gguf.Q8_0, gguf.Q4_0} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := WriteFile(path, w, EncodeOptions{Type: typ}); err != nil {
			t.Fatal(err)
		}
		r, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		wantCfg := w.Config
		wantCfg.Eps, wantCfg.RoPEBase = float64(float32(wantCfg.Eps)), float64(float32(wantCfg.RoPEBase)) // f32 in GGUF
		if r.Config != wantCfg {
			t.Fatalf("%v: config %+v, want %+v", typ, r.Config, w.Config)
		}
		if toks, _ := r.Meta[keyTokens].([]string); !reflect.DeepEqual(toks, ByteTokens()) {
			t.Fatalf("%v: tokens not kept", typ)
		}
		for n, x := range w.Tensors {
			want := x
			if typ != gguf.F32 && n != "token_embd.weight" && sh[n].rows > 1 {
				b, _ := gguf.Quantize(typ, x, sh[n].cols)
				want, _ = gguf.Dequantize(typ, b, len(x))
			}
			if !reflect.DeepEqual(r.Tensors[n], want) {
				t.Fatalf("%v: tensor %s differs after the round trip", typ, n)
			}
		}
		// Writing what was read gives the same tensor bytes.
		back := filepath.Join(t.TempDir(), "back.gguf")
		if err := WriteFile(back, r, EncodeOptions{Type: typ}); err != nil {
			t.Fatal(err)
		}
		a, _ := gguf.ReadFile(path)
		b, _ := gguf.ReadFile(back)
		for i, ta := range a.Tensors {
			if tb := b.Tensors[i]; ta.Name != tb.Name || ta.Type != tb.Type || !reflect.DeepEqual(ta.Data, tb.Data) {
				t.Fatalf("%v: re-exported tensor %s differs", typ, ta.Name)
			}
		}
		lm, err := r.LM("back")
		if err != nil {
			t.Fatal(err)
		}
		if typ == gguf.F32 {
			for _, p := range m.Params() {
				if !reflect.DeepEqual(p.Value.Data(), lm.Param(p.Name).Value.Data()) {
					t.Fatalf("parameter %s differs", p.Name)
				}
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	m := testLM(t, 4)
	w, _ := FromLM(m)
	f, err := Encode(w, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Set("general.architecture", "gpt2")
	if _, err := Decode(f); err == nil {
		t.Error("architecture gpt2 accepted")
	}
	f.Set("general.architecture", "llama")
	f.Set("llama.rope.dimension_count", uint32(8))
	if _, err := Decode(f); err == nil {
		t.Error("partial RoPE accepted")
	}
	f.Set("llama.rope.dimension_count", uint32(16))
	f.Tensors = f.Tensors[:len(f.Tensors)-2]
	if _, err := Decode(f); err == nil {
		t.Error("missing output_norm accepted")
	}
}
