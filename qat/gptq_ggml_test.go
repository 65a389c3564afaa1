package qat

import (
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/gguf"
)

// On llama.cpp's Q4_0 grid, GPTQ beats round-to-nearest on the layer's output error, every level
// is in -8..7 with fp16 block scales, and the GGUF encoding of the dequantized weights
// (gguf.Quantize, byte for byte llama.cpp's quantizer) gives back exactly the same weights: the
// export adds no rounding.
func TestGPTQGGMLQ4_0(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n, out, in = 512, 16, 64
	x := correlatedInputs(rng, n, in)
	h := hessianOf(t, x, in)
	w := randomWeight(rng, out, in)
	w32 := make([]float32, len(w))
	for i, v := range w {
		w32[i] = float32(v)
	}
	// llama.cpp's own round-to-nearest Q4_0 of the float weights
	b, err := gguf.Quantize(gguf.Q4_0, w32, in)
	if err != nil {
		t.Fatal(err)
	}
	ptq, err := gguf.Dequantize(gguf.Q4_0, b, len(w))
	if err != nil {
		t.Fatal(err)
	}
	ptq64 := make([]float64, len(ptq))
	for i, v := range ptq {
		ptq64[i] = float64(v)
	}
	ep := outputError(x, w, ptq64, out, in)
	for _, c := range []GPTQConfig{
		{Bits: 4, GroupSize: 32, GGMLQ4_0: true},
		{Bits: 4, GroupSize: 32, GGMLQ4_0: true, ActOrder: true},
	} {
		rtn, err := RoundToNearest(w, out, in, c)
		if err != nil {
			t.Fatal(err)
		}
		g, err := GPTQ(w, out, in, h, c)
		if err != nil {
			t.Fatal(err)
		}
		er, eg := outputError(x, w, rtn.Weights, out, in), outputError(x, w, g.Weights, out, in)
		t.Logf("%+v: ||XW^T-XQ^T||^2 llama.cpp Q4_0 %.4g, RTN %.4g, GPTQ %.4g", c, ep, er, eg)
		if !(eg < 0.8*ep) || !(eg < 0.8*er) {
			t.Errorf("%+v: GPTQ error %.4g is not clearly below llama.cpp's Q4_0 %.4g and RTN's %.4g", c, eg, ep, er)
		}
		for _, q := range []*QuantizedWeight{rtn, g} {
			q32 := make([]float32, len(q.Weights))
			for i, v := range q.Weights {
				q32[i] = float32(v)
				l, s := q.Levels[i], q.Scales[q.slice(i/in, i%in)]
				if l < -8 || l > 7 || float64(q32[i]) != v || q32[i] != float32(l)*s {
					t.Fatalf("weight %d = %v: level %d, scale %v", i, v, l, s)
				}
				if gguf.F16ToFloat32(gguf.F16FromFloat32(s)) != s {
					t.Fatalf("scale %v is not an fp16 value", s)
				}
			}
			b, err := gguf.Quantize(gguf.Q4_0, q32, in)
			if err != nil {
				t.Fatal(err)
			}
			back, err := gguf.Dequantize(gguf.Q4_0, b, len(q32))
			if err != nil {
				t.Fatal(err)
			}
			for i := range back {
				if back[i] != q32[i] {
					t.Fatalf("%+v: weight %d is %v, %v after the Q4_0 encoding", c, i, q32[i], back[i])
				}
			}
		}
	}
	if _, err := GPTQ(w, out, in, h, GPTQConfig{Bits: 4, GroupSize: 16, GGMLQ4_0: true}); err == nil {
		t.Error("GGMLQ4_0 with groups of 16 was accepted")
	}
}
