package quant

import (
	"errors"
	"fmt"
	"math"
)

// MinScale is the floor for every scale that qatgo computes or learns. It equals float32 machine
// epsilon, the floor PyTorch's observers use. A range that collapses to a point (for example an
// all-zero tensor) gets this scale instead of zero or a denormal.
const MinScale = 1.1920929e-07

// Params are the quantization parameters of one tensor slice (a tensor, a channel or a group).
type Params struct {
	Scale     float32
	ZeroPoint int32
}

// ErrNonFinite reports a NaN or infinite value where a finite one is required.
var ErrNonFinite = errors.New("quant: non-finite value")

// AsymmetricParams returns scale and zero point that map [lo, hi] onto r, with real zero exactly
// representable (the range is first widened to contain 0), as TFLite and PyTorch do.
func AsymmetricParams(lo, hi float64, r Range) (Params, error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return Params{}, fmt.Errorf("%w: range [%v, %v]", ErrNonFinite, lo, hi)
	}
	if lo > hi {
		return Params{}, fmt.Errorf("quant: empty range [%v, %v]", lo, hi)
	}
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	scale := float32((hi - lo) / float64(r.Max-r.Min))
	if !(scale >= MinScale) {
		scale = MinScale
	}
	zp := float64(r.Min) - math.Round(lo/float64(scale))
	zp = math.Max(float64(r.Min), math.Min(float64(r.Max), zp))
	return Params{Scale: scale, ZeroPoint: int32(zp)}, nil
}

// SymmetricParams returns the zero-point-0 scale max(|lo|,|hi|)/r.Max for a symmetric range r
// (normally NarrowSigned).
func SymmetricParams(lo, hi float64, r Range) (Params, error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return Params{}, fmt.Errorf("%w: range [%v, %v]", ErrNonFinite, lo, hi)
	}
	if lo > hi {
		return Params{}, fmt.Errorf("quant: empty range [%v, %v]", lo, hi)
	}
	m := math.Max(math.Abs(lo), math.Abs(hi))
	scale := float32(m / float64(r.Max))
	if !(scale >= MinScale) {
		scale = MinScale
	}
	return Params{Scale: scale}, nil
}

// BiasScale returns the scale of an int32 bias entry: inScale*wScale computed in float64 and
// rounded once to float32. The exporter quantizes biases with it, the model builder declares it,
// and QAT's bias simulation rounds to it, so all three agree exactly.
func BiasScale(inScale, wScale float32) float32 {
	return float32(float64(inScale) * float64(wScale))
}
