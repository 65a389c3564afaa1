package fakequant

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GGMLSwiGLU returns ref, the float silu(a)*b of a and b (same shape), with its value computed
// as llama.cpp's AVX-512 CPU backend computes it (ggml_vec_swiglu_f32): silu(a) = a/(1+exp(-a))
// with ggml_v_expf, the vectorised exp of ggml's vec.h, on runs of 16 values and libm's expf on a
// shorter tail, then times b, all in float32. The gradient is ref's.
func GGMLSwiGLU(ref, a, b *G.Node) (*G.Node, error) {
	if !a.Shape().Eq(b.Shape()) || !ref.Shape().Eq(a.Shape()) || a.Shape().Dims() != 2 {
		return nil, fmt.Errorf("fakequant: GGMLSwiGLU needs a, b and a reference of one shape [N,D], got %v, %v, %v", a.Shape(), b.Shape(), ref.Shape())
	}
	return ggmlSubstitute(swigluKernel{}, ref, a, b)
}

type swigluKernel struct{}

func (swigluKernel) name() string { return "SwiGLU" }

func (swigluKernel) run(in [][]float32, shapes []tensor.Shape, out []float32) error {
	a, b := in[0], in[1]
	d := shapes[0][1]
	for r := 0; r*d < len(a); r++ {
		i, vec := r*d, r*d+d/16*16 // ggml_vec_swiglu_f32 runs once per row
		for ; i < vec; i++ {
			out[i] = a[i] / (1 + ggmlExpf(0-a[i])) * b[i]
		}
		for ; i < (r+1)*d; i++ {
			out[i] = a[i] / (1 + float32(math.Exp(float64(-a[i])))) * b[i]
		}
	}
	return nil
}

// fma32 returns a*b+c rounded once to float32 (a*b is exact in float64).
func fma32(a, b, c float32) float32 { return addRound32(float64(a)*float64(b), c) }

// ggmlExpf is ggml_v_expf of ggml-cpu's vec.h in its AVX-512 form, one lane: exp(x) =
// 2^n * (1 + b*c1 + b^2*poly(b)) with n = round(x/ln 2), evaluated with float32 fmas.
func ggmlExpf(x float32) float32 {
	const r = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, r)
	n := z - r
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	u := b * b
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u,
		fma32(0x1.ffffecp-1, b, 1))
	if math.Abs(float64(n)) > 192 {
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	return float32(math.Ldexp(float64(j), int(n)))
}
