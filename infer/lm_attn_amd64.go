//go:build !purego

package infer

import (
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/quant"
)

// Assembly in lm_attn_amd64.s (AVX-512 F/DQ, taken on the kernels path "avx512vnni", which
// requires them).

//go:noescape
func attnExpAVX512(ex *int32, s *int32, n int, mant, sh uint64, pair *int64) (sum int64)

// exp2Pairs[j] holds exp2Table[j] (below 2^31) in its low 32 bits and exp2Table[j+1] -
// exp2Table[j] (negative, above -2^31) in its high 32 bits: attnExpAVX512 reads both with one
// gather.
var exp2Pairs = func() (p [256]int64) {
	for j := range p {
		p[j] = exp2Table[j] | (exp2Table[j+1]-exp2Table[j])<<32
	}
	return p
}()

// attentionExp stores the softmax weights 2^(-(max-s_t)*c) in Q20 of the scores in ex and
// returns their sum: attentionExpPortable's integers, 8 positions per step where the path has
// AVX-512.
func attentionExp(ex, scores []int32, ec expScale) int64 {
	if len(scores) > 0 && !ec.big && ec.mant < 1<<32 && kernels.Path() == "avx512vnni" {
		ex = ex[:len(scores)]
		return attnExpAVX512(&ex[0], &scores[0], len(scores), ec.mant, uint64(ec.sh), &exp2Pairs[0])
	}
	return attentionExpPortable(ex, scores, ec)
}

//go:noescape
func ropeAVX512(dst *int8, src *int8, hd, heads int, c2, s2 *int32, zIn, m0, round int64, right uint64, zOut int64)

// ropeVector runs the RoPE of one row with AVX-512 where the path has it and the head size is a
// multiple of 8 (c2, s2: the position's interleaved tables, lmFast), and reports whether it did.
func ropeVector(dst, src []int8, st *lmStep, c2, s2 []int32) bool {
	p := &st.rope
	n := p.heads * p.hd
	if p.hd%8 != 0 || p.heads < 1 || len(c2) < p.hd || len(s2) < p.hd || len(src) < n || len(dst) < n || kernels.Path() != "avx512vnni" {
		return false
	}
	m := st.mult.Multiplier()
	total := uint64(31 - m.Shift)
	ropeAVX512(&dst[0], &src[0], p.hd, p.heads, &c2[0], &s2[0], int64(st.zIn), int64(m.M0), int64(1)<<(total-1), total, int64(st.zOut))
	return true
}

//go:noescape
func addLUTAVX512(dst, a, b *int8, n int, ta, tb *int32, m0, round int64, right uint64, zp, lo, hi int64)

//go:noescape
func swigluAVX512(dst, gate, up *int8, n int, silu *int32, zUp, m0, round int64, right uint64, zp, lo, hi int64)

//go:noescape
func divRequantAVX512(dst *int8, src *int64, n int, d uint64, fd float64, m0, round int64, right uint64, zp int64)

// rqConsts returns the constants of p's vector form: M0, the rounding term and the right shift.
func rqConsts(p quant.PreparedMultiplier) (m0, round int64, right uint64) {
	m := p.Multiplier()
	right = uint64(31 - m.Shift)
	return int64(m.M0), int64(1) << (right - 1), right
}

// addVector runs the residual Add on the first multiple of 16 values with AVX-512 where the path
// has it and returns how many it did.
func addVector(dst, a, b []int8, st *lmStep) int {
	n := len(a) &^ 15
	if n == 0 || len(b) < n || len(dst) < n || kernels.Path() != "avx512vnni" {
		return 0
	}
	m0, rd, rt := rqConsts(st.mult)
	addLUTAVX512(&dst[0], &a[0], &b[0], n, &st.addTab[0][0], &st.addTab[1][0], m0, rd, rt,
		int64(st.add.zOut), int64(st.add.lo), int64(st.add.hi))
	return n
}

// swigluVector runs SwiGLU on the first multiple of 16 values with AVX-512 where the path has it
// and returns how many it did.
func swigluVector(dst, gate, up []int8, st *lmStep) int {
	n := len(gate) &^ 15
	if n == 0 || len(up) < n || len(dst) < n || kernels.Path() != "avx512vnni" {
		return 0
	}
	m0, rd, rt := rqConsts(st.mult)
	swigluAVX512(&dst[0], &gate[0], &up[0], n, &st.silu[0], int64(st.zIn2), m0, rd, rt, int64(st.zOut), -128, 127)
	return n
}

// divVector stores clamp(m(round(o*2^16/sum)) + z) for one attention head with AVX-512 where the
// path has it, len(o) is a multiple of 8 and 0 < sum < 2^30 (then |o|*2^16 < 2^53: the weights
// average cache values of at most 127), and reports whether it did.
func divVector(dst []int8, o []int64, sum int64, m quant.PreparedMultiplier, z int32) bool {
	if len(o) == 0 || len(o)%8 != 0 || sum <= 0 || sum >= 1<<30 || len(dst) < len(o) || kernels.Path() != "avx512vnni" {
		return false
	}
	m0, rd, rt := rqConsts(m)
	divRequantAVX512(&dst[0], &o[0], len(o), uint64(sum), float64(sum), m0, rd, rt, int64(z))
	return true
}
