package fakequant

import (
	"math"
)

// llama.cpp's CPU backend calls the C library for the RoPE angles (sincosf, powf). On x86-64
// Linux that is glibc, whose sincosf is not correctly rounded (about 2% of the angles of a
// RoPE table differ by one ulp from the correctly rounded value), so a bit-exact model has to
// follow glibc's algorithm: the single precision sine and cosine of glibc 2.28 and later
// (sysdeps/ieee754/flt-32, the FMA build that x86-64 selects on CPUs with FMA): the argument
// reduced modulo pi/2 in double precision, then two short polynomials evaluated in double with
// fused multiply-adds, rounded to float32 once.

// glibcSinCosPoly holds one set of polynomial coefficients: c for the cosine, s for the sine.
// The second set negates the cosine polynomial (quadrants 2 and 3).
type glibcSinCosPoly struct{ c0, c1, c2, c3, c4, s1, s2, s3 float64 }

var glibcSinCos = [2]glibcSinCosPoly{
	{0x1p0, -0x1.ffffffd0c621cp-2, 0x1.55553e1068f19p-5, -0x1.6c087e89a359dp-10, 0x1.99343027bf8c3p-16,
		-0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13},
	{-0x1p0, 0x1.ffffffd0c621cp-2, -0x1.55553e1068f19p-5, 0x1.6c087e89a359dp-10, -0x1.99343027bf8c3p-16,
		-0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13},
}

// glibcQuadrantSign is the sign of the sine in quadrants 0..3.
var glibcQuadrantSign = [4]float64{1, -1, -1, 1}

const (
	glibcHalfPiInv = 0x1.45F306DC9C883p+23 // 2/pi scaled by 2^24
	glibcHalfPi    = 0x1.921FB54442D18p0   // pi/2
	glibcPi63      = 0x1.921FB54442D18p-62 // 2pi * 2^-64
)

// glibcInvPio4 is 4/pi in fixed point, 8 new bits per entry: entry i is the 32-bit window of
// the binary expansion of 2/pi (0.A2F9836E4E44...) ending at byte i, so that a 96-bit slice
// starting at any byte can be read with three aligned loads (entries i, i+4, i+8).
var glibcInvPio4 = func() [24]uint32 {
	// 2/pi in hexadecimal, the first 24 bytes of its fraction.
	const twoOverPi = "\xa2\xf9\x83\x6e\x4e\x44\x15\x29\xfc\x27\x57\xd1\xf5\x34\xdd\xc0\xdb\x62\x95\x99\x3c\x43\x90\x41"
	var t [24]uint32
	for i := range t {
		for b := i - 3; b <= i; b++ {
			t[i] <<= 8
			if b >= 0 {
				t[i] |= uint32(twoOverPi[b])
			}
		}
	}
	return t
}()

// abstop12 returns the top 12 bits of x's representation without the sign bit.
func abstop12(x float32) uint32 { return (math.Float32bits(x) >> 20) & 0x7ff }

// glibcSincosf returns glibc's sinf(y) and cosf(y) (identical to its sincosf) for finite y.
func glibcSincosf(y float32) (sin, cos float32) {
	x := float64(y)
	switch {
	case abstop12(y) < abstop12(float32(0x1.921FB54442D18p-1)): // |y| < pi/4
		if abstop12(y) < abstop12(0x1p-12) {
			return y, 1
		}
		return glibcSinCosKernel(x, x*x, &glibcSinCos[0], 0)
	case abstop12(y) < abstop12(120):
		// one multiply-subtract reduction; the quadrant ends up in bits 24..31 of r
		r := x * glibcHalfPiInv
		n := (int32(r) + 0x800000) >> 24
		x = math.FMA(-float64(n), glibcHalfPi, x)
		p := &glibcSinCos[0]
		if n&2 != 0 {
			p = &glibcSinCos[1]
		}
		return glibcSinCosKernel(x*glibcQuadrantSign[n&3], x*x, p, int(n))
	case abstop12(y) < abstop12(float32(math.Inf(1))):
		xi := math.Float32bits(y)
		sign := int(xi >> 31)
		x, n := glibcReduceLarge(xi)
		p := &glibcSinCos[0]
		if (n+sign)&2 != 0 {
			p = &glibcSinCos[1]
		}
		return glibcSinCosKernel(x*glibcQuadrantSign[(n+sign)&3], x*x, p, n)
	}
	nan := float32(math.NaN())
	return nan, nan
}

// glibcReduceLarge reduces |y| >= 120 (its representation xi, sign ignored) modulo pi/2 with a
// 32x96-bit fixed-point product by 4/pi: the remainder in [-pi/4, pi/4] and the quadrant.
func glibcReduceLarge(xi uint32) (float64, int) {
	arr := glibcInvPio4[(xi>>26)&15:]
	shift := (xi >> 23) & 7
	xi = (xi&0xffffff | 0x800000) << shift
	res0 := uint64(xi * arr[0]) // a 32-bit product: only its low word counts
	res1 := uint64(xi) * uint64(arr[4])
	res2 := uint64(xi) * uint64(arr[8])
	res0 = res2>>32 | res0<<32
	res0 += res1
	n := (res0 + 1<<61) >> 62
	res0 -= n << 62
	return float64(int64(res0)) * glibcPi63, int(n)
}

// glibcSinCosKernel evaluates the sine and cosine polynomials at the reduced x (x2 = x*x) with
// the fused multiply-adds of glibc's FMA build; an odd quadrant n swaps the two results.
func glibcSinCosKernel(x, x2 float64, p *glibcSinCosPoly, n int) (sin, cos float32) {
	x4 := x2 * x2
	x3 := x2 * x
	c2 := math.FMA(x2, p.c4, p.c3)
	s1 := math.FMA(x2, p.s3, p.s2)
	c1 := math.FMA(x2, p.c1, p.c0)
	x5 := x3 * x2
	x6 := x4 * x2
	s := math.FMA(x3, p.s1, x)
	c := math.FMA(x4, p.c2, c1)
	sin, cos = float32(math.FMA(x5, s1, s)), float32(math.FMA(x6, c2, c))
	if n&1 != 0 {
		sin, cos = cos, sin
	}
	return sin, cos
}

// glibcPowf returns base^e rounded to float32. glibc's powf is correctly rounded in all but
// rare cases; the RoPE bases and exponents llama.cpp passes it are checked against it in the
// tests (TestGGMLLibmMatchesGlibc).
func glibcPowf(base, e float32) float32 { return float32(math.Pow(float64(base), float64(e))) }
