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
		j := j0
		// Four output channels per pass over the activation row.
		for ; j+4 <= j1; j += 4 {
			w0 := w.w[j*k : j*k+k]
			w1 := w.w[(j+1)*k : (j+1)*k+k]
			w2 := w.w[(j+2)*k : (j+2)*k+k]
			w3 := w.w[(j+3)*k : (j+3)*k+k]
			s0, s1, s2, s3 := bias[j], bias[j+1], bias[j+2], bias[j+3]
			for kk, x := range ar {
				v := int32(x)
				s0 += v * int32(w0[kk])
				s1 += v * int32(w1[kk])
				s2 += v * int32(w2[kk])
				s3 += v * int32(w3[kk])
			}
			dr[j-j0], dr[j-j0+1], dr[j-j0+2], dr[j-j0+3] = s0, s1, s2, s3
		}
		for ; j < j1; j++ {
			wr := w.w[j*k : j*k+k]
			s := bias[j]
			for kk, x := range ar {
				s += int32(x) * int32(wr[kk])
			}
			dr[j-j0] = s
		}
	}
}
