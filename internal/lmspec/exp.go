package lmspec

import (
	"math"
	"math/big"
)

// expFracBits is the precision of the attention's exponentials: Q20.
const expFracBits = 20

// exp2Entry returns table entry j (0..256) of 2^(-j/256) in Q30: round(2^(-j/256) * 2^30).
func exp2Entry(j int64) int64 { return int64(math.Round(math.Exp2(-float64(j)/256) * (1 << 30))) }

// exp2Neg returns 2^(-u/2^16) in Q20 for u >= 0 (u in Q16 log2 units): with n = floor(u/2^16),
// j = floor(u/2^8) mod 2^8 and l = u mod 2^8,
//
//	v = T[j] + floor(((T[j+1] - T[j]) * l + 128) / 256)       (linear interpolation, Q30)
//	e = round(v / 2^(n+10))                                    (ties away from zero; 0 for n >= 31)
func exp2Neg(u *big.Int) int64 {
	n := new(big.Int).Rsh(u, 16)
	if n.Cmp(big.NewInt(31)) >= 0 {
		return 0
	}
	f := new(big.Int).Sub(u, new(big.Int).Lsh(n, 16)).Int64()
	j, l := f/256, f%256
	t0, t1 := exp2Entry(j), exp2Entry(j+1)
	num := (t1-t0)*l + 128
	interp := num / 256
	if num%256 != 0 && num < 0 {
		interp-- // floor
	}
	return roundPow2(t0+interp, uint(n.Int64())+30-expFracBits)
}

// expArg returns u = floor(d * mant / 2^sh), the score difference d >= 0 (in units of
// sQ*kCache) in Q16 log2 units, for the factor c = qmodel.AttentionExpScale: with
// V = c*2^16 = fr*2^e (math.Frexp, fr in [0.5, 1)), mant = round(fr*2^32) and sh = 32 - e. When
// V >= 2^32 every d >= 1 gives 2^(-u) below 2^-31 (u is then d*2^32, enough for exp2Neg's 0).
func expArg(d int64, c float64) *big.Int {
	v := c * (1 << 16)
	if v >= 1<<32 {
		return new(big.Int).Lsh(big.NewInt(d), 32)
	}
	fr, e := math.Frexp(v)
	mant := int64(math.Round(fr * (1 << 32)))
	u := new(big.Int).Mul(big.NewInt(d), big.NewInt(mant))
	return u.Rsh(u, uint(32-e)) // d*mant may pass 2^63: exact in big.Int
}
