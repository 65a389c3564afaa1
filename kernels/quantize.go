package kernels

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/quant"
)

// QuantizeFloat32 sets dst[i] = quant.QuantizeValue(src[i], scale, zeroPoint, qmin, qmax) for
// every i (the runtime's quantization of float32 inputs). scale must be positive and finite and
// -128 <= qmin <= zeroPoint <= qmax <= 127. The SIMD paths divide, round and clamp 8 values at a
// time with the same IEEE float32 division and rounding rule, so the results are identical on
// every path; inputs containing NaN or infinities take the reference loop.
func QuantizeFloat32(dst []int8, src []float32, scale float32, zeroPoint, qmin, qmax int32) {
	if len(dst) < len(src) {
		panic(fmt.Sprintf("kernels: QuantizeFloat32: len(dst) = %d < len(src) = %d", len(dst), len(src)))
	}
	if !(scale > 0) || math.IsInf(float64(scale), 0) || qmin < -128 || qmax > 127 || qmin > zeroPoint || zeroPoint > qmax {
		panic(fmt.Sprintf("kernels: QuantizeFloat32: scale %v, zero point %d, range [%d,%d]", scale, zeroPoint, qmin, qmax))
	}
	n8 := 0
	if p := current.Load(); p.quantF32 != nil && AllFinite(src) {
		n8 = len(src) &^ 7
		if n8 > 0 {
			p.quantF32(&dst[0], &src[0], n8, scale, float32(zeroPoint), float32(qmin), float32(qmax))
		}
	}
	for i := n8; i < len(src); i++ {
		dst[i] = int8(quant.QuantizeValue(src[i], scale, zeroPoint, qmin, qmax))
	}
}

// AllFinite reports whether no value of src is NaN or infinite.
func AllFinite(src []float32) bool {
	n8 := 0
	if p := current.Load(); p.allFinite != nil {
		n8 = len(src) &^ 7
		if n8 > 0 && !p.allFinite(&src[0], n8) {
			return false
		}
	}
	for _, v := range src[n8:] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}
