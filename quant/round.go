package quant

import "math"

// Float is the set of float types that training graphs use.
type Float interface{ ~float32 | ~float64 }

// Round is the one rounding rule of qatgo: round half away from zero (math.Round semantics).
// It is used by the fake-quant forward pass, by the exporter and by every reference implementation.
// For float32 input the result is exact: float32 to float64 conversion is lossless.
func Round[F Float](x F) F {
	if f, ok := any(x).(float32); ok {
		return F(roundFloat32(f))
	}
	return F(math.Round(float64(x)))
}

// roundFloat32 is math.Round for float32 input, written with the intrinsified math.Trunc.
// In float64 the sum x+-0.5 is exact for every float32 x with |x| < 2^52, and float32 values
// at or above 2^23 are integers already, so the result equals math.Round(float64(x)) for every
// input (checked over all 2^32 bit patterns once, and on random and edge values in the tests).
func roundFloat32(x float32) float32 {
	f := float64(x)
	if !(math.Abs(f) < 1<<23) { // integers, Inf and NaN
		return x
	}
	return float32(math.Trunc(f + math.Copysign(0.5, f)))
}

// Clamp limits v to [lo, hi].
func Clamp(v, lo, hi int32) int32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// QuantizeValue maps one real value to its integer level: clamp(Round(x/scale)+zeroPoint, qmin, qmax).
// The division happens in the float type F, exactly as the fake-quant op does it.
// NaN maps to zeroPoint (clamped), +Inf to qmax and -Inf to qmin; callers that must reject
// non-finite input check for it before calling (fakequant and export do).
func QuantizeValue[F Float](x, scale F, zeroPoint, qmin, qmax int32) int32 {
	v := Round(x / scale)
	switch {
	case v != v: // NaN
		return Clamp(zeroPoint, qmin, qmax)
	case float64(v) >= float64(qmax)-float64(zeroPoint):
		return qmax
	case float64(v) <= float64(qmin)-float64(zeroPoint):
		return qmin
	}
	return Clamp(int32(v)+zeroPoint, qmin, qmax)
}

// DequantizeValue returns scale*(q-zeroPoint) computed in F.
func DequantizeValue[F Float](q int32, scale F, zeroPoint int32) F {
	return F(q-zeroPoint) * scale
}

// FakeQuantizeValue is QuantizeValue followed by DequantizeValue: the value the fake-quant
// forward pass produces for x.
func FakeQuantizeValue[F Float](x, scale F, zeroPoint, qmin, qmax int32) F {
	return DequantizeValue(QuantizeValue(x, scale, zeroPoint, qmin, qmax), scale, zeroPoint)
}
