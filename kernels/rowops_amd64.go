//go:build !purego

package kernels

// Assembly in rowops_amd64.s.

//go:noescape
func requantRowAVX512(dst *int8, src *int32, n int, m0, round int64, right uint64, zp, lo, hi int64)

//go:noescape
func dequantRowAVX2(dst *float32, src *int32, sc *float32, n int)

//go:noescape
func normRowAVX512(dst *int8, src *int8, n int, zIn int64, shift, r uint64, rf float64, m0, round, right, sgn *int64, zOut int64)

// rowPath returns the vector level of the row epilogues on the selected path: AVX-512 (F, BW,
// DQ, VL) on "avx512vnni", AVX2 on the other amd64 paths, none on "portable".
func rowPath() int {
	switch current.Load().name {
	case "avx512vnni":
		return rowAVX512
	case "portable":
		return rowNone
	}
	return rowAVX2
}
