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
