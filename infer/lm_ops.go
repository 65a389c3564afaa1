package infer

import (
	"math"
	"math/bits"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/quant"
)

// The integer non-linear ops of the language-model runtime, one token row at a time. Each states
// its worst-case error against float math on the same (dequantized) int8 inputs; lm_ops_test.go
// checks these bounds on random and extreme inputs.

// out8 returns clamp(m(acc) + z) in int8 (computed in int64: no wrap-around).
func out8(m quant.PreparedMultiplier, acc, z int32) int8 { return sat8(int64(m.Apply(acc)) + int64(z)) }

// sat8 clamps v to int8 (min/max: branch-free, the clamp is data-dependent).
func sat8(v int64) int8 { return int8(min(max(v, -128), 127)) }

// roundShift64 returns x / 2^s rounded half away from zero (s >= 1), without a branch on the
// sign: (x + 2^(s-1) - [x < 0]) >> s (arithmetic shift) is floor((x+h)/2^s) for x >= 0 and
// -floor((-x+h)/2^s) for x < 0.
func roundShift64(x int64, s uint) int64 {
	return (x + int64(1)<<(s-1) + x>>63) >> s
}

// roundDiv64 returns num/den rounded half away from zero (den > 0).
func roundDiv64(num, den int64) int64 {
	m := num >> 63 // 0 or -1
	a := (num ^ m) - m
	q := (a + den/2) / den
	return (q ^ m) - m
}

// divider divides non-negative integers below 2^63 by a fixed d > 0 without a division
// instruction: inv = floor((2^64-1)/d), q0 = hi64(u*inv) is floor(u/d) or one less, and one
// comparison of the remainder corrects it. Exact for every u < 2^63.
type divider struct{ d, inv uint64 }

func newDivider(d uint64) divider { return divider{d: d, inv: math.MaxUint64 / d} }

// div returns floor(u/d).
func (v divider) div(u uint64) uint64 {
	q, _ := bits.Mul64(u, v.inv)
	if u-q*v.d >= v.d {
		q++
	}
	return q
}

// roundDiv returns num/d rounded half away from zero (|num| < 2^62), as roundDiv64.
func (v divider) roundDiv(num int64) int64 {
	m := num >> 63
	a := uint64((num ^ m) - m)
	q := int64(v.div(a + v.d/2))
	return (q ^ m) - m
}

func sat32(v int64) int32 {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	if v < math.MinInt32 {
		return math.MinInt32
	}
	return int32(v)
}

// isqrt64 returns floor(sqrt(n)) by the bitwise (digit-by-digit) method: integer only.
func isqrt64(n uint64) uint64 {
	var r uint64
	b := uint64(1) << 62
	for b > n {
		b >>= 2
	}
	for b != 0 {
		if n >= r+b {
			n -= r + b
			r = r>>1 + b
		} else {
			r >>= 1
		}
		b >>= 2
	}
	return r
}

// embeddingRow writes row tok of the table, requantized with the row's multiplier:
// out[i] = clamp(zOut + round(w[tok][i]*gs * sRow/sOut)). Error: at most 0.5 LSB plus the
// multiplier's Q31 rounding (relative 2^-31) against float math.
func embeddingRow(dst []int8, st *lmStep, tok int) {
	t := &st.table
	m := st.perRow[tok]
	for i := range dst[:t.d] {
		dst[i] = out8(m, t.at(tok, i), st.zOut)
	}
}

// rmsNormRow computes y = x/sqrt(mean(x^2)+eps)*gain on x' = q - zIn (the input scale cancels
// except in eps, which becomes epsQ = eps/sIn^2):
//
//	ms = floor(sum(x'^2) * 2^32 / D) + epsQ          (128-bit intermediate)
//	r  = isqrt(ms)                                    (rms of x' in units of 2^-16)
//	t  = round(x' * 2^(16+S) / r)                     (x'/rms in units of 2^-S, S = qmodel.RMSNormShift)
//	q  = clamp(zOut + sign(gain) * round(t * |gain|/(sOut*2^S)))
//
// Error against float math: the floors of ms and r perturb 1/rms by less than 2^-15 relative
// (rms >= 2^-16*r >= ... , r >= 2^16 whenever some x' != 0), t carries 0.5*2^-S, the multiplier
// 2^-31 relative: at most 0.5 LSB + |y|/sOut * 2^-14, i.e. at most 1 LSB for |y|/sOut <= 128.
func rmsNormRow(dst, src []int8, st *lmStep) {
	d := st.inN
	var ss uint64
	for _, q := range src[:d] {
		x := int64(q) - int64(st.zIn)
		ss += uint64(x * x)
	}
	quo, _ := bits.Div64(ss>>32, ss<<32, uint64(d)) // ss < d*2^16: no overflow
	r := int64(isqrt64(quo + st.rms.epsQ))
	if r == 0 {
		r = 1
	}
	sh := uint(16 + st.rms.shift)
	dv := newDivider(uint64(r))
	for i, q := range src[:d] {
		x := int64(q) - int64(st.zIn)
		t := sat32(dv.roundDiv(x << sh))
		y := int64(st.perRow[i].Apply(t))
		if st.sign[i] < 0 {
			y = -y
		}
		dst[i] = sat8(y + int64(st.zOut))
	}
}

// ropeParams hold RoPE's Q30 cos/sin tables, [pos][pair].
type ropeParams struct {
	heads, hd int
	cos, sin  []int32
}

func newRoPE(heads, hd, maxSeq int, theta float64) ropeParams {
	half := hd / 2
	p := ropeParams{heads: heads, hd: hd, cos: make([]int32, maxSeq*half), sin: make([]int32, maxSeq*half)}
	for t := 0; t < maxSeq; t++ {
		for j := 0; j < half; j++ {
			a := float64(t) * math.Pow(theta, -2*float64(j)/float64(hd))
			p.cos[t*half+j] = int32(math.Round(math.Cos(a) * (1 << 30)))
			p.sin[t*half+j] = int32(math.Round(math.Sin(a) * (1 << 30)))
		}
	}
	return p
}

// ropeRow rotates each pair (2j, 2j+1) of each head of x' = q - zIn by pos*theta^(-2j/hd) with
// Q30 tables: the int64 sums are rounded to Q15 and requantized with sIn/(sOut*2^15). Error
// against float math: table rounding 2^-31 per term (|x'| <= 255: < 2^-22 LSB of the input),
// the Q15 rounding 2^-16 input LSB, the multiplier 2^-31 relative and the final 0.5 LSB: at most
// 0.5 LSB + 2^-10 output LSB when sIn ~ sOut.
func ropeRow(dst, src []int8, st *lmStep, pos int) {
	p := &st.rope
	half := p.hd / 2
	cs, sn := p.cos[pos*half:(pos+1)*half], p.sin[pos*half:(pos+1)*half]
	for h := 0; h < p.heads; h++ {
		x, y := src[h*p.hd:(h+1)*p.hd], dst[h*p.hd:(h+1)*p.hd]
		for j := 0; j < half; j++ {
			x0, x1 := int64(x[2*j])-int64(st.zIn), int64(x[2*j+1])-int64(st.zIn)
			c, s := int64(cs[j]), int64(sn[j])
			a := roundShift64(x0*c-x1*s, 15)
			b := roundShift64(x0*s+x1*c, 15)
			y[2*j] = out8(st.mult, int32(a), st.zOut)
			y[2*j+1] = out8(st.mult, int32(b), st.zOut)
		}
	}
}

// swigluRow computes silu(gate)*up: the silu of the int8 gate comes from a 256-entry table in
// units of the table scale (qmodel.SiLUTable, rounded to 1/32767 of the largest |silu|), the
// product with up' = q - zUp is exact in int32 and requantized once. Error against float math:
// 0.5 table unit times |up'| times tableScale*sUp/sOut, plus 0.5 LSB.
func swigluRow(dst, gate, up []int8, st *lmStep) {
	for i := range dst[:st.inN] {
		prod := st.silu[int(gate[i])+128] * (int32(up[i]) - st.zIn2)
		dst[i] = out8(st.mult, prod, st.zOut)
	}
}

// hadamardRow applies the orthonormal Walsh-Hadamard transform H/sqrt(B) to each block of B
// values of x' = q - zIn: an exact integer fast Walsh-Hadamard transform (|result| <= 255*B fits
// int32) followed by one requantization with sIn/(sOut*sqrt(B)). Error: 0.5 LSB plus the
// multiplier's 2^-31 relative.
func hadamardRow(dst, src []int8, st *lmStep, buf []int32) {
	n, b := st.inN, st.block
	buf = buf[:n]
	for i, q := range src[:n] {
		buf[i] = int32(q) - st.zIn
	}
	for o := 0; o < n; o += b {
		v := buf[o : o+b]
		for h := 1; h < b; h <<= 1 {
			for i := 0; i < b; i += 2 * h {
				for j := i; j < i+h; j++ {
					x, y := v[j], v[j+h]
					v[j], v[j+h] = x+y, x-y
				}
			}
		}
	}
	for i, v := range buf {
		dst[i] = out8(st.mult, v, st.zOut)
	}
}

// exp2Table[j] = round(2^(-j/256) * 2^30), j = 0..256.
var exp2Table = func() (t [257]int64) {
	for j := range t {
		t[j] = int64(math.Round(math.Exp2(-float64(j)/256) * (1 << 30)))
	}
	return t
}()

// expFracBits is the precision of the attention exponentials (Q20).
const expFracBits = 20

// exp2NegQ16 returns 2^(-u/65536) in Q20 (u >= 0): the integer part of u/65536 is a shift, the
// fraction is interpolated linearly between the 257 entries of exp2Table. Relative error of the
// interpolation below (ln2/256)^2/8 < 1e-6; absolute rounding 2^-21.
func exp2NegQ16(u uint64) int64 {
	n := u >> 16
	if n >= 31 {
		return 0
	}
	f := u & 0xffff
	j, l := f>>8, int64(f&0xff)
	v := exp2Table[j] + ((exp2Table[j+1]-exp2Table[j])*l+128)>>8
	return roundShift64(v, uint(n)+30-expFracBits)
}

// expScale turns an integer score difference d >= 0 into u = round(d*c*2^16) (log2 units, Q16)
// with a 32-bit mantissa: u = (d*mant) >> sh, computed in 128 bits.
type expScale struct {
	mant uint64
	sh   uint
	big  bool // c*2^16 >= 2^32: any d >= 1 gives exp < 2^-31
}

func newExpScale(c float64) expScale {
	v := c * (1 << 16)
	if v >= 1<<32 {
		return expScale{big: true}
	}
	fr, e := math.Frexp(v) // v = fr*2^e, fr in [0.5,1)
	sh := 32 - e           // mant = v*2^sh in [2^31, 2^32)
	if sh > 120 {
		return expScale{} // c ~ 0: every exponential is 1
	}
	return expScale{mant: uint64(math.Round(fr * (1 << 32))), sh: uint(sh)}
}

func (e expScale) apply(d uint64) uint64 {
	if d == 0 {
		return 0
	}
	if e.big {
		return math.MaxUint64
	}
	hi, lo := bits.Mul64(d, e.mant)
	if e.sh >= 64 {
		if e.sh >= 128 {
			return 0
		}
		return hi >> (e.sh - 64)
	}
	if hi>>e.sh != 0 {
		return math.MaxUint64
	}
	return hi<<(64-e.sh) | lo>>e.sh
}

// attentionRow runs causal attention of one query row at position pos over cache positions
// 0..pos (already written). For query head h and its KV head g: scores s_t = sum q'*k (int32),
// e_t = 2^(-(max-s_t)*c) in Q20 (c = sQ*sK[g]/(sqrt(hd)*ln2)), o = sum e_t*v_t (int64),
// r = round(o*2^16/sum e_t) and out = clamp(zOut + round(r*sV[g]/(sOut*2^16))).
// Error against float softmax attention over the same int8 cache: exponentials within 2^-19
// absolute, the average within 2^-17 of a cache unit; at most 0.5 LSB + sV/sOut*(2^-12) in all.
//
// The inner products run on kernels.AttentionScores and kernels.AttentionValues (SIMD where
// available), over the cache in its storage order; acc holds the hd int64 sums and q16 the query
// head minus its zero point. All sums are exact integers, so the result does not depend on the
// order (attentionRowRef in the tests is the plain form it is checked against bit for bit).
func attentionRow(dst, q []int8, st *lmStep, kc, vc []int8, pos int, scratch []int32, acc []int64, q16 []int16) {
	a := st.att
	hd, ms := a.hd, a.maxSeq
	group := a.heads / a.kvHeads
	n := pos + 1
	scores := scratch[:n]
	ex := scratch[n : 2*n] // exponentials: Q20, at most 2^20 = kernels.MaxAttentionWeight
	qq := q16[:hd]
	o := acc[:hd]
	for h := 0; h < a.heads; h++ {
		g := h / group
		for d, x := range q[h*hd : (h+1)*hd] {
			qq[d] = int16(int32(x) - a.zQ)
		}
		kernels.AttentionScores(scores, qq, kc[g*ms*hd:(g*ms+n)*hd])
		mx := int32(math.MinInt32)
		for _, s := range scores {
			mx = max(mx, s)
		}
		ec := a.expC[g]
		var sum int64
		for t, s := range scores {
			e := exp2NegQ16(ec.apply(uint64(int64(mx) - int64(s))))
			ex[t] = int32(e)
			sum += e
		}
		kernels.AttentionValues(o, ex, vc[g*ms*hd:(g*ms+n)*hd])
		y := dst[h*hd : (h+1)*hd]
		y = y[:len(o)]
		m, z := a.mo[g], st.zOut
		dv := newDivider(uint64(sum)) // |v<<16| <= 2^20*2^16*127*MaxContext < 2^62
		for d, v := range o {
			y[d] = out8(m, int32(dv.roundDiv(v<<16)), z)
		}
	}
}

// cacheWrite stores k' and v' of one row at position pos, requantized to the per-head symmetric
// int8 cache scales (clamped to the cache range, [-127,127] unless the op narrows it) through
// the per-head tables built at load.
func cacheWrite(kc, vc, k, v []int8, a *attentionParams, pos int) {
	hd, ms := a.hd, a.maxSeq
	for g := 0; g < a.kvHeads; g++ {
		kd := kc[(g*ms+pos)*hd : (g*ms+pos+1)*hd]
		vd := vc[(g*ms+pos)*hd : (g*ms+pos+1)*hd]
		kt, vt := &a.kTab[g], &a.vTab[g]
		for d, x := range k[g*hd : (g+1)*hd] {
			kd[d] = kt[uint8(x)^0x80]
		}
		for d, x := range v[g*hd : (g+1)*hd] {
			vd[d] = vt[uint8(x)^0x80]
		}
	}
}

// lmAdd is the residual Add of the LM runtime: each int8 input level's rescaled value comes from
// the table built at load (the same MultiplyByQuantizedMultiplier of (q-z)<<AddLeftShift that
// the CNN runtime's add computes per element), the sum is requantized once.
func lmAdd(dst, a, b []int8, st *lmStep) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	ta, tb := &st.addTab[0], &st.addTab[1]
	m, z, lo, hi := st.mult, int64(st.add.zOut), int64(st.add.lo), int64(st.add.hi)
	for i, x := range a {
		v := int64(m.Apply(ta[uint8(x)^0x80]+tb[uint8(b[i])^0x80])) + z
		dst[i] = int8(min(max(v, lo), hi))
	}
}
