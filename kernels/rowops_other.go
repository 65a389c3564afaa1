//go:build purego || !amd64

package kernels

func rowPath() int { return rowNone }

func requantRowAVX512(dst *int8, src *int32, n int, m0, round int64, right uint64, zp, lo, hi int64) {
	panic("kernels: no AVX-512 in this build")
}

func dequantRowAVX2(dst *float32, src *int32, sc *float32, n int) {
	panic("kernels: no AVX2 in this build")
}

func normRowAVX512(dst *int8, src *int8, n int, zIn int64, shift, r uint64, rf float64, m0, round, right, sgn *int64, zOut int64) {
	panic("kernels: no AVX-512 in this build")
}
