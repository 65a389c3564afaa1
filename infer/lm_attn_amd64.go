//go:build !purego

package infer

import "github.com/qatgo/qatgo/kernels"

// Assembly in lm_attn_amd64.s (AVX-512 F/DQ, taken on the kernels path "avx512vnni", which
// requires them).

//go:noescape
func attnExpAVX512(ex *int32, s *int32, n int, mant, sh uint64, tab *int64) (sum int64)

// attentionExp stores the softmax weights 2^(-(max-s_t)*c) in Q20 of the scores in ex and
// returns their sum: attentionExpPortable's integers, 8 positions per step where the path has
// AVX-512.
func attentionExp(ex, scores []int32, ec expScale) int64 {
	if len(scores) > 0 && !ec.big && ec.mant < 1<<32 && kernels.Path() == "avx512vnni" {
		ex = ex[:len(scores)]
		return attnExpAVX512(&ex[0], &scores[0], len(scores), ec.mant, uint64(ec.sh), &exp2Table[0])
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
