package gguf

import "math"

// F16FromFloat32 converts x to IEEE 754 half precision, rounding to nearest with ties to even
// (what ggml's GGML_FP32_TO_FP16 does with F16C and in its portable code): values at or above
// 65520 in magnitude become infinities, NaN stays NaN.
func F16FromFloat32(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 112 // half exponent field: exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// subnormal half (or zero): units of 2^-24
		if exp == 0 {
			return sign // float32 subnormals are far below half's smallest subnormal
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		if shift > 25 {
			return sign
		}
		q := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && q&1 == 1) {
			q++
		}
		return sign | uint16(q)
	}
	q := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && q&1 == 1) {
		q++ // a carry into the exponent is right, up to infinity
	}
	return sign | uint16(q)
}

// F16ToFloat32 converts an IEEE 754 half to float32 (exactly).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		// subnormal: mant * 2^-24, exact in float32
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// RoundF16 returns x rounded to the nearest half-precision value, as a float32.
func RoundF16(x float32) float32 { return F16ToFloat32(F16FromFloat32(x)) }
