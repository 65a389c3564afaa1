package lmspec

import (
	"math"
	"math/big"

	"github.com/qatgo/qatgo/quant"
)

// The exact integer helpers of the specification.

// roundDiv returns num/den rounded to nearest with ties away from zero (den > 0), exactly.
func roundDiv(num, den *big.Int) *big.Int {
	a := new(big.Int).Abs(num)
	q, r := new(big.Int).QuoRem(a, den, new(big.Int))
	if new(big.Int).Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if num.Sign() < 0 {
		q.Neg(q)
	}
	return q
}

// roundDiv64 is roundDiv on int64 values (den > 0, |num| < 2^62).
func roundDiv64(num, den int64) int64 {
	a := num
	if a < 0 {
		a = -a
	}
	q, r := a/den, a%den
	if 2*r >= den {
		q++
	}
	if num < 0 {
		return -q
	}
	return q
}

// roundPow2 returns x/2^s rounded to nearest with ties away from zero (0 <= s <= 61, |x| < 2^62).
func roundPow2(x int64, s uint) int64 { return roundDiv64(x, int64(1)<<s) }

// clampInt returns v clamped to [lo, hi].
func clampInt(v, lo, hi int64) int64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// sat32 saturates v to int32.
func sat32(v int64) int32 { return int32(clampInt(v, math.MinInt32, math.MaxInt32)) }

// requant8 is the contract's requantization to int8: clamp(zOut + M(acc), -128, 127), with M
// quant's MultiplyByQuantizedMultiplier (rounding ties toward +inf, saturating to int32).
func requant8(acc int32, m quant.Multiplier, zOut int32) int8 {
	return int8(quant.Requantize(acc, m, zOut, math.MinInt8, math.MaxInt8))
}
