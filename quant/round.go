package quant

import "math"

// Float is the set of float types that training graphs use.
type Float interface{ ~float32 | ~float64 }

// Round is the one rounding rule of qatgo: round half away from zero (math.Round semantics).
// It is used by the fake-quant forward pass, by the exporter and by every reference implementation.
// For float32 input the result is exact: float32 to float64 conversion is lossless. Round inlines
// into callers' loops (a version built on math.Trunc measured slower inside the fake-quant loops).
func Round[F Float](x F) F { return F(math.Round(float64(x))) }

// RoundDiv returns num/den rounded half away from zero (the rule of Round, in integers), for
// den > 0: the integer average of the runtime's AvgPool2D. It works in int64, so that num =
// MinInt32 does not overflow on negation. den <= 0 is programmer misuse (division by zero panics).
func RoundDiv(num, den int32) int32 {
	n, d := int64(num), int64(den)
	if n >= 0 {
		return int32((n + d/2) / d)
	}
	return int32(-((-n + d/2) / d))
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
	v := float64(Round(x / scale))
	if v != v { // NaN
		v = 0
	}
	// v is an integer (or +-Inf); adding the zero point in float64 is exact below 2^52 and
	// anything larger clamps anyway.
	v = min(max(v+float64(zeroPoint), float64(qmin)), float64(qmax))
	return int32(v)
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
