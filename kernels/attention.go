package kernels

import "fmt"

// The two inner products of integer attention over an int8 KV cache stored one position after
// the other ([position][headDim]), for one query head: the scores q·k_t and the weighted sum of
// the value rows. Every path computes the same integers (exact sums; the int32 scores wrap like
// Go's int32 arithmetic), so the results are bit-identical to the portable loops below.

// AttentionScores stores s[t] = sum_{d < hd} q[d]*k[t*hd+d] for every t < len(s), with
// hd = len(q), in int32. The query holds levels minus their zero point (|q[d]| <= 255 for an int8
// query; any int16 is accepted). It panics if k is shorter than len(s)*hd.
func AttentionScores(s []int32, q []int16, k []int8) {
	n, hd := len(s), len(q)
	if len(k) < n*hd {
		panic(fmt.Sprintf("kernels: AttentionScores: len(k) = %d < %d positions x %d", len(k), n, hd))
	}
	if n == 0 {
		return
	}
	if p := current.Load(); p.attnScores != nil && hd > 0 && hd%16 == 0 {
		p.attnScores(&s[0], &q[0], &k[0], n, hd)
		return
	}
	attentionScoresPortable(s, q, k)
}

func attentionScoresPortable(s []int32, q []int16, k []int8) {
	hd := len(q)
	for t := range s {
		kr := k[t*hd : (t+1)*hd]
		kr = kr[:len(q)]
		var s0, s1 int32
		d := 0
		for ; d+2 <= len(kr); d += 2 {
			s0 += int32(q[d]) * int32(kr[d])
			s1 += int32(q[d+1]) * int32(kr[d+1])
		}
		if d < len(kr) {
			s0 += int32(q[d]) * int32(kr[d])
		}
		s[t] = s0 + s1
	}
}

// MaxAttentionWeight is the largest weight AttentionValues accepts (the Q20 exponential 1.0).
const MaxAttentionWeight = 1 << 20

// AttentionValues stores o[d] = sum_{t < len(e)} e[t]*v[t*hd+d] for every d < hd = len(o), in
// int64 (exact). Weights must be in [0, MaxAttentionWeight] (the SIMD paths sum up to 15
// products in int32 before widening); it panics if one is outside or v is shorter than
// len(e)*hd.
func AttentionValues(o []int64, e []int32, v []int8) {
	n, hd := len(e), len(o)
	if len(v) < n*hd {
		panic(fmt.Sprintf("kernels: AttentionValues: len(v) = %d < %d positions x %d", len(v), n, hd))
	}
	for _, x := range e {
		if uint32(x) > MaxAttentionWeight {
			panic(fmt.Sprintf("kernels: AttentionValues: weight %d outside [0, %d]", x, MaxAttentionWeight))
		}
	}
	if p := current.Load(); p.attnValues != nil && hd > 0 && hd%16 == 0 && n > 0 {
		p.attnValues(&o[0], &e[0], &v[0], n, hd)
		return
	}
	attentionValuesPortable(o, e, v)
}

func attentionValuesPortable(o []int64, e []int32, v []int8) {
	hd := len(o)
	clear(o)
	for t, w := range e {
		if w == 0 {
			continue
		}
		vr := v[t*hd : (t+1)*hd]
		vr = vr[:len(o)]
		x := int64(w)
		for d, y := range vr {
			o[d] += x * int64(y)
		}
	}
}
