package quant

import (
	"fmt"
	"math"
)

// Multiplier is a real multiplier M in fixed point: M = M0 * 2^(Shift-31), M0 a Q31 value in
// [2^30, 2^31) (or 0 for M == 0). This is TFLite's (quantized_multiplier, shift) pair.
type Multiplier struct {
	M0    int32
	Shift int32
}

// MinShift and MaxShift bound the exponent of a Multiplier. With them 31-Shift lies in [1, 62],
// so MultiplyByQuantizedMultiplier's 64-bit arithmetic never overflows.
const (
	MinShift = -31
	MaxShift = 30
)

// QuantizeMultiplier converts a real multiplier (normally sIn*sW/sOut) to a Multiplier.
// Multipliers too small to represent become zero; M must be finite, >= 0 and < 2^30.
func QuantizeMultiplier(m float64) (Multiplier, error) {
	if math.IsNaN(m) || math.IsInf(m, 0) || m < 0 {
		return Multiplier{}, fmt.Errorf("quant: multiplier %v must be finite and >= 0", m)
	}
	if m == 0 {
		return Multiplier{}, nil
	}
	frac, exp := math.Frexp(m) // m = frac * 2^exp, frac in [0.5, 1)
	q := int64(math.Round(frac * (1 << 31)))
	if q == 1<<31 {
		q /= 2
		exp++
	}
	if exp < MinShift {
		return Multiplier{}, nil // below 2^-32: rounds every int32 accumulator to 0 or +-1 anyway
	}
	if exp > MaxShift {
		return Multiplier{}, fmt.Errorf("quant: multiplier %v too large (exponent %d > %d)", m, exp, MaxShift)
	}
	return Multiplier{M0: int32(q), Shift: int32(exp)}, nil
}

// Float returns the real value M0 * 2^(Shift-31).
func (m Multiplier) Float() float64 { return math.Ldexp(float64(m.M0), int(m.Shift)-31) }

// Valid reports whether the pair is in the range the kernels accept.
func (m Multiplier) Valid() bool {
	return m.M0 >= 0 && m.Shift >= MinShift && m.Shift <= MaxShift
}

// MultiplyByQuantizedMultiplier returns round(acc * M0 / 2^(31-shift)) with ties rounded toward
// +inf, computed exactly in 64 bits (TFLite single-rounding semantics). It is the reference that
// every requantization kernel must reproduce bit for bit. The result saturates to int32.
// shift must lie in [MinShift, MaxShift] (QuantizeMultiplier guarantees it); values outside are
// clamped to that range.
func MultiplyByQuantizedMultiplier(acc int32, m0, shift int32) int32 {
	return Multiplier{M0: m0, Shift: shift}.Prepare().Apply(acc)
}

// PreparedMultiplier is a Multiplier with its rounding constant and right shift computed once, for
// kernels that apply one multiplier to many accumulators. Apply is MultiplyByQuantizedMultiplier:
// the formula exists only here.
type PreparedMultiplier struct {
	m0, round int64
	right     uint64
}

// Prepare precomputes the constants of MultiplyByQuantizedMultiplier for m. A shift outside
// [MinShift, MaxShift] is clamped to that range.
func (m Multiplier) Prepare() PreparedMultiplier {
	total := uint64(31 - min(max(m.Shift, MinShift), MaxShift)) // in [1, 62]
	return PreparedMultiplier{m0: int64(m.M0), round: int64(1) << (total - 1), right: total}
}

// Apply returns round(acc * M0 / 2^(31-Shift)) with ties toward +inf, saturated to int32.
func (p PreparedMultiplier) Apply(acc int32) int32 {
	r := (int64(acc)*p.m0 + p.round) >> (p.right & 63)
	return int32(min(max(r, math.MinInt32), math.MaxInt32))
}

// Requantize maps an int32 accumulator to an output level:
// clamp(MultiplyByQuantizedMultiplier(acc, m) + zeroPoint, lo, hi). lo/hi carry fused ReLU/ReLU6.
func Requantize(acc int32, m Multiplier, zeroPoint, lo, hi int32) int32 {
	v := int64(MultiplyByQuantizedMultiplier(acc, m.M0, m.Shift)) + int64(zeroPoint)
	if v < int64(lo) {
		return lo
	}
	if v > int64(hi) {
		return hi
	}
	return int32(v)
}

// Multiplier returns the pair p was prepared from, its shift clamped to [MinShift, MaxShift]
// (so that Multiplier().Prepare() == p): kernels with their own vector form of Apply read
// their constants from it.
func (p PreparedMultiplier) Multiplier() Multiplier {
	return Multiplier{M0: int32(p.m0), Shift: 31 - int32(p.right)}
}
