//go:build !purego

package kernels

// Assembly in attention_amd64.s (AVX2; every amd64 path of this package has AVX2).

//go:noescape
func attnScoresAVX2(s *int32, q *int16, k *int8, n, hd int)

//go:noescape
func attnValuesAVX2(o *int64, e *int32, v *int8, n, hd int)
