package kernels

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/qatgo/qatgo/quant"
)

// Row epilogues of a language model's per-token ops: the requantization of one row of int32
// values with one multiplier (RoPE, SwiGLU, residual Add, embedding rows, attention outputs),
// the dequantization of int32 logits to float32, and the normalise-and-requantize stage of the
// integer RMSNorm. Each has a portable Go form (the reference the tests compare with) and, on
// amd64, a vector form selected with the path: AVX-512 on "avx512vnni" (64-bit products,
// arithmetic shifts and saturating narrows on zmm) and AVX2 for the float dequantization on
// every amd64 path. All forms give identical results.

// RowRequant is a per-tensor requantization epilogue prepared once:
//
//	out = clamp(quant.MultiplyByQuantizedMultiplier(acc, M0, Shift) + ZeroPoint, Min, Max)
//
// the same formula as Requant with one multiplier for every element.
type RowRequant struct {
	pm         quant.PreparedMultiplier
	m0, round  int64
	right      uint64
	zp, lo, hi int32
}

// NewRowRequant prepares the epilogue of multiplier m (a shift outside [quant.MinShift,
// quant.MaxShift] is clamped to it, as quant.Multiplier.Prepare does), zero point zp and clamp
// bounds [lo, hi]. It returns an error unless -128 <= lo <= hi <= 127 and |zp| <= 2^24.
func NewRowRequant(m quant.Multiplier, zp, lo, hi int32) (RowRequant, error) {
	if lo > hi || lo < math.MinInt8 || hi > math.MaxInt8 {
		return RowRequant{}, fmt.Errorf("kernels: RowRequant: clamp bounds [%d,%d] not inside [-128,127]", lo, hi)
	}
	if zp < -1<<24 || zp > 1<<24 {
		return RowRequant{}, fmt.Errorf("kernels: RowRequant: zero point %d outside [-2^24, 2^24]", zp)
	}
	total := uint64(31 - min(max(m.Shift, quant.MinShift), quant.MaxShift))
	return RowRequant{pm: m.Prepare(), m0: int64(m.M0), round: int64(1) << (total - 1), right: total,
		zp: zp, lo: lo, hi: hi}, nil
}

// Run stores the epilogue of src[i] in dst[i] for every i < len(src). It panics if dst is
// shorter than src.
func (r *RowRequant) Run(dst []int8, src []int32) {
	dst = dst[:len(src)]
	n := 0
	if rowPath() >= rowAVX512 {
		if n = len(src) &^ 7; n > 0 {
			requantRowAVX512(&dst[0], &src[0], n, r.m0, r.round, r.right, int64(r.zp), int64(r.lo), int64(r.hi))
		}
	}
	r.portable(dst[n:], src[n:])
}

func (r *RowRequant) portable(dst []int8, src []int32) {
	dst = dst[:len(src)]
	zp, lo, hi := int64(r.zp), int64(r.lo), int64(r.hi)
	for i, acc := range src {
		v := int64(r.pm.Apply(acc)) + zp
		dst[i] = int8(min(max(v, lo), hi))
	}
}

// DequantizeInt32 stores scales[i]*float32(src[i]) in dst[i] for every i < len(src) (the
// float32 product of the rounded conversion, as Go computes it). It panics if dst or scales is
// shorter than src.
func DequantizeInt32(dst []float32, src []int32, scales []float32) {
	dst, scales = dst[:len(src)], scales[:len(src)]
	n := 0
	if rowPath() >= rowAVX2 {
		if n = len(src) &^ 7; n > 0 {
			dequantRowAVX2(&dst[0], &src[0], &scales[0], n)
		}
	}
	dequantizePortable(dst[n:], src[n:], scales[n:])
}

func dequantizePortable(dst []float32, src []int32, scales []float32) {
	dst, scales = dst[:len(src)], scales[:len(src)]
	for i, v := range src {
		dst[i] = scales[i] * float32(v)
	}
}

// NormRequant is the per-element stage of the integer RMSNorm with per-channel multipliers:
// given the row's integer rms r (in units of 2^-16 of the input levels, r >= 1),
//
//	t   = sat32(round(x' * 2^Shift / r))      x' = src[i] - zIn, rounded half away from zero
//	y   = quant.MultiplyByQuantizedMultiplier(t, M0[i], Shift[i]), negated where negate[i]
//	out = clamp(y + zOut, -128, 127)
//
// computed exactly (integer division; 64-bit products).
type NormRequant struct {
	n          int
	pm         []quant.PreparedMultiplier
	neg        []bool
	shift      uint
	zIn, zOut  int32
	m0, round  []int64 // per channel, for the vector form
	right, sgn []int64 // sgn: 0 or -1
}

// NewNormRequant prepares the stage for len(m) channels. shift must lie in [0, 45] and zIn,
// zOut in [-128, 127] (so that |x'|*2^shift + r/2 stays below 2^53, exact in float64);
// len(negate) must equal len(m).
func NewNormRequant(m []quant.Multiplier, negate []bool, shift int, zIn, zOut int32) (*NormRequant, error) {
	if len(negate) != len(m) {
		return nil, fmt.Errorf("kernels: NormRequant: %d signs for %d multipliers", len(negate), len(m))
	}
	if shift < 0 || shift > 45 {
		return nil, fmt.Errorf("kernels: NormRequant: shift %d outside [0, 45]", shift)
	}
	if zIn < math.MinInt8 || zIn > math.MaxInt8 || zOut < math.MinInt8 || zOut > math.MaxInt8 {
		return nil, fmt.Errorf("kernels: NormRequant: zero points %d, %d outside [-128, 127]", zIn, zOut)
	}
	n := len(m)
	p := &NormRequant{n: n, pm: make([]quant.PreparedMultiplier, n), neg: append([]bool(nil), negate...),
		shift: uint(shift), zIn: zIn, zOut: zOut,
		m0: make([]int64, n), round: make([]int64, n), right: make([]int64, n), sgn: make([]int64, n)}
	for i, mu := range m {
		p.pm[i] = mu.Prepare()
		total := int64(31 - min(max(mu.Shift, quant.MinShift), quant.MaxShift))
		p.m0[i], p.round[i], p.right[i] = int64(mu.M0), int64(1)<<(total-1), total
		if negate[i] {
			p.sgn[i] = -1
		}
	}
	return p, nil
}

// Len returns the number of channels.
func (p *NormRequant) Len() int { return p.n }

// Run computes the stage for the row src (len(src) >= Len()) with rms r into dst. It panics if r
// is 0 or r >= 2^32, or if a slice is shorter than Len().
func (p *NormRequant) Run(dst, src []int8, r uint64) {
	if r == 0 || r >= 1<<32 {
		panic(fmt.Sprintf("kernels: NormRequant.Run: r = %d outside [1, 2^32)", r))
	}
	dst, src = dst[:p.n], src[:p.n]
	n := 0
	if rowPath() >= rowAVX512 {
		if n = p.n &^ 7; n > 0 {
			normRowAVX512(&dst[0], &src[0], n, int64(p.zIn), uint64(p.shift), r, float64(r),
				&p.m0[0], &p.round[0], &p.right[0], &p.sgn[0], int64(p.zOut))
		}
	}
	p.portable(dst[n:], src[n:], r, n)
}

// portable computes channels c0.. (dst and src start at channel c0).
func (p *NormRequant) portable(dst, src []int8, r uint64, c0 int) {
	dst = dst[:len(src)]
	inv := math.MaxUint64 / r
	for i, q := range src {
		x := (int64(q) - int64(p.zIn)) << p.shift
		m := x >> 63
		a := uint64((x^m)-m) + r/2
		d, _ := bits.Mul64(a, inv) // floor(a/r) or one less
		if a-d*r >= r {
			d++
		}
		t := (int64(d) ^ m) - m
		t = min(max(t, math.MinInt32), math.MaxInt32)
		y := int64(p.pm[c0+i].Apply(int32(t)))
		if p.neg[c0+i] {
			y = -y
		}
		dst[i] = int8(min(max(y+int64(p.zOut), -128), 127))
	}
}

// Vector levels of the row epilogues (rowPath).
const (
	rowNone = iota
	rowAVX2
	rowAVX512
)
