package kernels

// portableImpl is the reference implementation in plain Go; every other path is tested
// against it.
var portableImpl = &impl{
	name:   "portable",
	gemm32: gemm32Portable,
	gemv4:  gemv4Portable,
}

// The portable GEMM multiplies two output channels per 64-bit multiplication (SWAR): the
// weights of channels 2q and 2q+1 are stored as one int64 W = w[2q][k] + w[2q+1][k]<<32
// (PackedInt8.pairs), and sum_k a[k]*W = S0 + S1<<32 holds exactly in int64 for the two dot
// products S0, S1 (|a*W| < 2^39 and K <= 2^16, so the total stays below 2^55 in magnitude).
// Since |S0| < 2^31, S0 is the low 32 bits of the total read as int32, and S1 is
// (total - S0) >> 32. The results are exact, so bit-identical to any other way of summing.

// split2 decodes a two-lane sum into its int32 halves.
func split2(t int64) (lo, hi int32) {
	lo = int32(t)
	return lo, int32((t - int64(lo)) >> 32)
}

// gemm32Portable: dst[i*ldd+(j-j0)] = sum_k a[i*lda+k]*w[j][k] + bias[j] for i < m, j0 <= j < j1.
// dst is indexed relative to column j0; j0 is even (a multiple of panelN or 0).
func gemm32Portable(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, j0, j1 int) {
	k := w.k
	w2 := w.pairs()
	q0, q1 := j0/2, (j1+1)/2 // channel pairs
	i := 0
	// Two rows by two channel pairs: 4 int64 accumulators, 4 loads and 4 multiplications
	// for 8 multiply-adds.
	for ; i+2 <= m; i += 2 {
		a0 := a[i*lda : i*lda+k]
		a1 := a[(i+1)*lda : (i+1)*lda+k]
		a1 = a1[:len(a0)]
		d0 := dst[i*ldd : i*ldd+j1-j0]
		d1 := dst[(i+1)*ldd : (i+1)*ldd+j1-j0]
		q := q0
		for ; q+2 <= q1; q += 2 {
			wa := w2[q*k : q*k+k]
			wb := w2[(q+1)*k : (q+1)*k+k]
			wa, wb = wa[:len(a0)], wb[:len(a0)]
			var s00, s01, s10, s11 int64
			for kk, x := range a0 {
				x0, x1 := int64(x), int64(a1[kk])
				va, vb := wa[kk], wb[kk]
				s00 += x0 * va
				s01 += x0 * vb
				s10 += x1 * va
				s11 += x1 * vb
			}
			store4(d0, d1, bias, 2*q, j0, j1, s00, s01, s10, s11)
		}
		for ; q < q1; q++ {
			wa := w2[q*k : q*k+k]
			wa = wa[:len(a0)]
			var s0, s1 int64
			for kk, x := range a0 {
				va := wa[kk]
				s0 += int64(x) * va
				s1 += int64(a1[kk]) * va
			}
			store2(d0, bias, 2*q, j0, j1, s0)
			store2(d1, bias, 2*q, j0, j1, s1)
		}
	}
	for ; i < m; i++ {
		a0 := a[i*lda : i*lda+k]
		d0 := dst[i*ldd : i*ldd+j1-j0]
		q := q0
		for ; q+4 <= q1; q += 4 {
			wa := w2[q*k : q*k+k]
			wb := w2[(q+1)*k : (q+1)*k+k]
			wc := w2[(q+2)*k : (q+2)*k+k]
			wd := w2[(q+3)*k : (q+3)*k+k]
			wa, wb, wc, wd = wa[:len(a0)], wb[:len(a0)], wc[:len(a0)], wd[:len(a0)]
			var s0, s1, s2, s3 int64
			for kk, x := range a0 {
				v := int64(x)
				s0 += v * wa[kk]
				s1 += v * wb[kk]
				s2 += v * wc[kk]
				s3 += v * wd[kk]
			}
			store2(d0, bias, 2*q, j0, j1, s0)
			store2(d0, bias, 2*q+2, j0, j1, s1)
			store2(d0, bias, 2*q+4, j0, j1, s2)
			store2(d0, bias, 2*q+6, j0, j1, s3)
		}
		for ; q < q1; q++ {
			wa := w2[q*k : q*k+k]
			wa = wa[:len(a0)]
			var s0 int64
			for kk, x := range a0 {
				s0 += int64(x) * wa[kk]
			}
			store2(d0, bias, 2*q, j0, j1, s0)
		}
	}
}

// store2 decodes the two-lane sum t of channels j and j+1 and stores them (plus bias) into
// d (indexed from column j0), skipping channel j+1 if it is j1 or beyond.
func store2(d []int32, bias []int32, j, j0, j1 int, t int64) {
	lo, hi := split2(t)
	d[j-j0] = lo + bias[j]
	if j+1 < j1 {
		d[j+1-j0] = hi + bias[j+1]
	}
}

// store4 stores the sums of two rows by two channel pairs starting at channel j.
func store4(d0, d1 []int32, bias []int32, j, j0, j1 int, s00, s01, s10, s11 int64) {
	store2(d0, bias, j, j0, j1, s00)
	store2(d0, bias, j+2, j0, j1, s01)
	store2(d1, bias, j, j0, j1, s10)
	store2(d1, bias, j+2, j0, j1, s11)
}
