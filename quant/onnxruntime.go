package quant

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

// This file is the second requantization rule of qatgo, for integer models that must compute
// exactly what onnxruntime's int8 kernels compute on their QDQ export (qmodel.RequantOnnxruntime).
// onnxruntime (MLAS, x86-64) requantizes a QLinearConv/QGemm accumulator as
//
//	y = RoundHalfEven(float32(float32(acc) * s)) + zero_point, s = float32(float32(s_in*s_w[c]) / s_out)
//
// and a QLinearAdd in float32 fused multiply-adds. Float32Multiplier computes the first in integer
// arithmetic (a 24-bit mantissa and a shift, two round-half-even steps); OnnxruntimeAddTable
// tabulates the second for every pair of int8 inputs at load time. The default rule (Q31
// multiplier, one rounding, ties toward +inf) is the rest of this package.

// Float32Multiplier is a requantization multiplier held as a float32 would hold it: the value
// Mant * 2^Exp with Mant 0 or in [2^23, 2^24) (or below 2^23 for a subnormal float32).
type Float32Multiplier struct {
	Mant uint32
	Exp  int32
}

// NewFloat32Multiplier returns the multiplier holding the float32 m exactly. m must be finite and
// >= 0.
func NewFloat32Multiplier(m float32) (Float32Multiplier, error) {
	if m < 0 || math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
		return Float32Multiplier{}, fmt.Errorf("quant: multiplier %v must be finite and >= 0", m)
	}
	b := math.Float32bits(m)
	e, f := int32(b>>23&0xff), b&(1<<23-1)
	if e == 0 {
		return Float32Multiplier{Mant: f, Exp: -149}, nil
	}
	return Float32Multiplier{Mant: f | 1<<23, Exp: e - 150}, nil
}

// OnnxruntimeMultiplier returns onnxruntime's requantization multiplier of a convolution or dense
// layer channel: float32(float32(inScale*wScale) / outScale), evaluated in float32 as its
// QLinearConv and QGemm kernels do.
func OnnxruntimeMultiplier(inScale, wScale, outScale float32) (Float32Multiplier, error) {
	p := float32(inScale * wScale)
	return NewFloat32Multiplier(float32(p / outScale))
}

// Float returns the multiplier's value.
func (m Float32Multiplier) Float() float64 { return math.Ldexp(float64(m.Mant), int(m.Exp)) }

// Apply returns RoundHalfEven(float32(float32(acc) * m)) saturated to int32, computed in
// integers: acc rounded to 24 significant bits (float32(acc)), the exact product rounded to 24
// significant bits (the float32 multiply), then rounded to an integer, each half to even.
func (m Float32Multiplier) Apply(acc int32) int32 {
	if m.Mant == 0 || acc == 0 {
		return 0
	}
	a := uint64(acc)
	if acc < 0 {
		a = uint64(-int64(acc))
	}
	p := roundSignificant(roundSignificant(a, 24)*uint64(m.Mant), 24) // < 2^56
	var r uint64
	switch e := int(m.Exp); {
	case e >= 0:
		if bits.Len64(p)+e > 32 {
			r = 1 << 32 // saturates below
		} else {
			r = p << e
		}
	case -e >= 64:
		r = 0 // below 2^-8
	default:
		r = shiftHalfEven(p, uint(-e))
	}
	if acc < 0 {
		return int32(-int64(min(r, 1<<31)))
	}
	return int32(min(r, math.MaxInt32))
}

// Requantize returns clamp(m.Apply(acc) + zeroPoint, lo, hi).
func (m Float32Multiplier) Requantize(acc int32, zeroPoint, lo, hi int32) int32 {
	return Clamp(int32(min(max(int64(m.Apply(acc))+int64(zeroPoint), math.MinInt32), math.MaxInt32)), lo, hi)
}

// shiftHalfEven returns x / 2^sh rounded half to even, for 1 <= sh <= 63.
func shiftHalfEven(x uint64, sh uint) uint64 {
	q, rem, half := x>>sh, x&(1<<sh-1), uint64(1)<<(sh-1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	return q
}

// roundSignificant rounds x to n significant bits, half to even (the value stays in place).
func roundSignificant(x uint64, n int) uint64 {
	l := bits.Len64(x)
	if l <= n {
		return x
	}
	sh := uint(l - n)
	return shiftHalfEven(x, sh) << sh
}

// QuantizeValueHalfEven is QuantizeValue with onnxruntime's QuantizeLinear rounding: x/scale in F,
// rounded half to even.
func QuantizeValueHalfEven[F Float](x, scale F, zeroPoint, qmin, qmax int32) int32 {
	v := math.RoundToEven(float64(x / scale))
	if v != v { // NaN
		v = 0
	}
	v = min(max(v+float64(zeroPoint), float64(qmin)), float64(qmax))
	return int32(v)
}

// OnnxruntimeAddTable returns the output of onnxruntime's QLinearAdd for every pair of int8 inputs
// (index uint8(a)<<8 | uint8(b)), clamped to [lo, hi]. onnxruntime runs the QDQ export's Add on
// uint8 data (the int8 level + 128, zero points likewise) with MLAS's AVX2 kernel:
//
//	rA = float32(sA/sC), rB = float32(sB/sC), F = float32(zC) - (rA*float32(zA) + rB*float32(zB))
//	c  = RoundHalfEven(fma(a, rA, fma(b, rB, F))), saturated to uint8
//
// with float32 operations and single-rounding fused multiply-adds (computed here exactly with
// math/big). Other onnxruntime builds (SSE2, NEON, the scalar fallback) compute this Add
// differently. The scales must be positive and finite.
func OnnxruntimeAddTable(sA, sB, sC float32, zA, zB, zC, lo, hi int32) (*[1 << 16]int8, error) {
	for _, s := range []float32{sA, sB, sC} {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("quant: Add scales %v, %v, %v must be positive and finite", sA, sB, sC)
		}
	}
	rA, rB := float32(sA/sC), float32(sB/sC)
	za, zb, zc := float32(zA+128), float32(zB+128), float32(zC+128)
	f := zc - float32(float32(rA*za)+float32(rB*zb))
	var inner [256]float32
	for b := range inner {
		inner[b] = fma32(float32(b), rB, f)
	}
	t := new([1 << 16]int8)
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			v := math.RoundToEven(float64(fma32(float32(a), rA, inner[b])))
			u := min(max(v, 0), 255)                                  // packs/packus saturation
			t[(a^0x80)<<8|b^0x80] = int8(Clamp(int32(u)-128, lo, hi)) // uint8 u is the int8 level u-128
		}
	}
	return t, nil
}

// fma32 returns x*y+z rounded once to float32, half to even.
func fma32(x, y, z float32) float32 {
	p := new(big.Float).SetPrec(64).SetFloat64(float64(x))
	p.Mul(p, new(big.Float).SetFloat64(float64(y))) // exact: 48 bits
	r := new(big.Float).SetPrec(24).SetMode(big.ToNearestEven)
	r.Add(p, new(big.Float).SetFloat64(float64(z)))
	v, _ := r.Float32()
	return v
}
