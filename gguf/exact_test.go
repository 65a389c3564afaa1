package gguf

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// QuantizeExact stores blocks that are on a type's grid (an fp16 scale times levels in range,
// here with scales llama.cpp's rule would not choose) so that Dequantize returns them bit for
// bit, keeps the reference quantizer's bytes where those are exact, and refuses blocks off the
// grid.
func TestQuantizeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	grid := func(t TensorType, lo, hi int) []float32 {
		x := make([]float32, 4*QK)
		for b := 0; b < len(x); b += QK {
			d := RoundF16(float32(0.001 + 0.1*rng.Float64()))
			for j := b; j < b+QK; j++ {
				x[j] = d * float32(lo+rng.IntN(hi-lo+1))
			}
		}
		return x
	}
	for _, c := range []struct {
		typ    TensorType
		lo, hi int
	}{{Q4_0, -7, 7}, {Q4_0, -8, 5}, {Q4_0, -3, 3}, {Q8_0, -127, 127}, {Q8_0, -20, 90}} {
		x := grid(c.typ, c.lo, c.hi)
		b, err := QuantizeExact(c.typ, x, 2*QK)
		if err != nil {
			t.Fatalf("%v levels %d..%d: %v", c.typ, c.lo, c.hi, err)
		}
		y, err := Dequantize(c.typ, b, len(x))
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				t.Fatalf("%v levels %d..%d: value %d written as %v, want %v", c.typ, c.lo, c.hi, i, y[i], x[i])
			}
		}
		ref, _ := Quantize(c.typ, x, 2*QK)
		back, _ := Dequantize(c.typ, ref, len(x))
		off := 0
		for i := range x {
			if back[i] != x[i] {
				off++
			}
		}
		if c.hi == 7 && off == 0 {
			t.Errorf("%v levels %d..%d: llama.cpp's quantizer already reproduces these blocks; the test needs learned scales", c.typ, c.lo, c.hi)
		}
	}
	// blocks llama.cpp's quantizer reproduces keep its bytes
	x := make([]float32, QK)
	for i := range x {
		x[i] = float32(i%16-8) * 0.25
	}
	x[0], x[16] = 2, 0 // one largest magnitude, positive: d = 2/-8
	b, err := QuantizeExact(Q4_0, x, QK)
	ref, _ := Quantize(Q4_0, x, QK)
	if err != nil || string(b) != string(ref) {
		t.Errorf("a block the reference quantizer holds: err %v, bytes differ %v", err, string(b) != string(ref))
	}
	// off the grid
	x[3] += 0.01
	if _, err := QuantizeExact(Q4_0, x, QK); err == nil || !strings.Contains(err.Error(), "block 0") {
		t.Errorf("a block off the grid: %v", err)
	}
	if _, err := QuantizeExact(F16, []float32{1, 1.0001}, 2); err == nil {
		t.Error("a value that is not a half-precision number was written as F16")
	}
	if b, err := QuantizeExact(F32, []float32{1.0001}, 1); err != nil || len(b) != 4 {
		t.Errorf("F32: %v", err)
	}
}
