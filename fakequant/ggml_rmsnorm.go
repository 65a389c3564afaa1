package fakequant

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GGMLRMSNorm returns ref, the float RMSNorm x / sqrt(mean(x^2) + eps) * gain of x [N, D] and
// gain [D], with its value computed as llama.cpp's CPU backend computes it
// (ggml_compute_forward_rms_norm_f32 and the gain multiply): the squares rounded to float32 and
// summed in float64, mean rounded to float32, scale = 1/sqrtf(mean + eps) in float32, then
// (x*scale)*gain. The gradient is ref's.
func GGMLRMSNorm(ref, x, gain *G.Node, eps float64) (*G.Node, error) {
	xs, gs := x.Shape(), gain.Shape()
	if xs.Dims() != 2 || gs.Dims() != 1 || gs[0] != xs[1] || !ref.Shape().Eq(xs) {
		return nil, fmt.Errorf("fakequant: GGMLRMSNorm needs x [N,D], gain [D] and a reference of x's shape, got %v, %v, %v", xs, gs, ref.Shape())
	}
	return ggmlSubstitute(rmsNormKernel{eps: float32(eps)}, ref, x, gain)
}

type rmsNormKernel struct{ eps float32 }

func (k rmsNormKernel) name() string { return fmt.Sprintf("RMSNorm{eps=%g}", k.eps) }

func (k rmsNormKernel) run(in [][]float32, shapes []tensor.Shape, out []float32) error {
	x, g := in[0], in[1]
	d := shapes[0][1]
	for r := 0; r*d < len(x); r++ {
		row, y := x[r*d:(r+1)*d], out[r*d:(r+1)*d]
		var sum float64
		for _, v := range row {
			sum += float64(v * v)
		}
		mean := float32(sum / float64(d))
		scale := 1 / float32(math.Sqrt(float64(mean+k.eps)))
		for i, v := range row {
			y[i] = v * scale * g[i]
		}
	}
	return nil
}
