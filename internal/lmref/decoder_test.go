package lmref

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(x float32) {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if x < -87.33654 { // documented flush to zero (e^-87.3 is the smallest normal float32)
			if got != 0 {
				t.Fatalf("expf(%g) = %g, want 0", x, got)
			}
			return
		}
		if want < 0x1p-126 { // subnormal range: absolute error
			if math.Abs(got-want) > 0x1p-148 {
				t.Fatalf("expf(%g) = %g, want %g", x, got, want)
			}
			return
		}
		if math.IsInf(want, 1) || want > math.MaxFloat32 {
			if !math.IsInf(got, 1) && got < 3.4e38 {
				t.Fatalf("expf(%g) = %g, want overflow", x, got)
			}
			return
		}
		if rel := math.Abs(got-want) / want; rel > 4e-7 {
			t.Fatalf("expf(%g) = %g, want %g (relative error %g)", x, got, want, rel)
		}
	}
	for _, x := range []float32{0, -0, 1, -1, 0.5, -0.34657359, 0.34657359, 10, -10, 80, -80, -87.3, 88.7, -100, 100} {
		check(x)
	}
	for i := 0; i < 200000; i++ {
		check(float32(r.Float64()*176 - 88))
	}
}

// TestDecoderMatchesFloat: the float32 decoder (speed baseline) computes what the float64-norm
// reference Float computes, to float32 rounding, in both weight layouts, and it does not allocate
// per token.
func TestDecoderMatchesFloat(t *testing.T) {
	for _, c := range []Config{
		{Vocab: 64, Dim: 32, Layers: 2, Heads: 4, KVHeads: 2, Hidden: 64, Ctx: 24, Bits: 8, Hadamard: true},
		{Vocab: 64, Dim: 64, Layers: 1, Heads: 4, Hidden: 128, Ctx: 16, Bits: 4, Group: 32},
	} {
		m, err := RandomLM(c, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, opt := range []DecoderOptions{{}, {Transposed: true}, {AttentionGEMM: true}} {
			ref, err := NewFloat(m)
			if err != nil {
				t.Fatal(err)
			}
			d, err := NewDecoder(m, opt)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < c.Ctx; i++ {
				tok := r.IntN(c.Vocab)
				want, err := ref.Step(tok)
				if err != nil {
					t.Fatal(err)
				}
				got, err := d.Decode(tok)
				if err != nil {
					t.Fatal(err)
				}
				var scale float64
				for _, w := range want {
					scale = math.Max(scale, math.Abs(float64(w)))
				}
				for j := range want {
					if e := math.Abs(float64(got[j]) - float64(want[j])); e > 1e-4*scale+1e-6 {
						t.Fatalf("%+v %+v token %d logit %d: %g, reference %g", c, opt, i, j, got[j], want[j])
					}
				}
			}
			if _, err := d.Decode(0); err == nil {
				t.Fatal("decode past the context accepted")
			}
			d.Reset()
			if a := testing.AllocsPerRun(10, func() {
				if _, err := d.Decode(1); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Fatalf("%v allocations per token", a)
			}
		}
	}
}
