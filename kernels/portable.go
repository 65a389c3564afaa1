package kernels

// portableImpl is the reference implementation in plain Go; every other path is tested
// against it.
var portableImpl = &impl{
	name:   "portable",
	gemm32: gemm32Portable,
	gemv4:  gemv4Portable,
}

// gemm32Portable: dst[i*ldd+(j-j0)] = sum_k a[i*lda+k]*w[j][k] + bias[j] for i < m, j0 <= j < j1.
// dst is indexed relative to column j0.
func gemm32Portable(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, j0, j1 int) {
	k := w.k
	for i := 0; i < m; i++ {
		ar := a[i*lda : i*lda+k]
		dr := dst[i*ldd : i*ldd+j1-j0]
		for j := j0; j < j1; j++ {
			wr := w.w[j*k : j*k+k]
			s := bias[j]
			for kk, x := range ar {
				s += int32(x) * int32(wr[kk])
			}
			dr[j-j0] = s
		}
	}
}
