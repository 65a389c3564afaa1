package kernels

import "unsafe"

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
//
// The micro-kernel dot1x4 takes one activation row and four pairs (8 channels) whose values
// are interleaved per k, so that it needs a single weight pointer: with more live pointers
// the Go compiler spilled accumulators or pointers to the stack in the inner loop.

// split2 decodes a two-lane sum into its int32 halves.
func split2(t int64) (lo, hi int32) {
	lo = int32(t)
	return lo, int32((t - int64(lo)) >> 32)
}

// gemm32Portable: dst[i*ldd+(j-j0)] = sum_k a[i*lda+k]*w[j][k] + bias[j] for i < m, j0 <= j < j1.
// dst is indexed relative to column j0; j0 is a multiple of 8 (0 or a multiple of panelN).
func gemm32Portable(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, j0, j1 int) {
	k := w.k
	wq := w.pairs()
	np := (w.n + 1) / 2
	nq := np / 4 // full groups of 4 pairs
	q0, q1 := j0/2, (j1+1)/2
	for i := 0; i < m; i++ {
		a0 := a[i*lda : i*lda+k]
		d0 := dst[i*ldd : i*ldd+j1-j0]
		q := q0
		for ; q < min(q1, 4*nq); q += 4 {
			s0, s1, s2, s3 := dot1x4(a0, wq[q*k:(q+4)*k])
			if j := 2 * q; j+8 <= j1 {
				store8(d0[j-j0:j-j0+8], bias[j:j+8], s0, s1, s2, s3)
				continue
			}
			store2(d0, bias, 2*q, j0, j1, s0)
			store2(d0, bias, 2*q+2, j0, j1, s1)
			store2(d0, bias, 2*q+4, j0, j1, s2)
			store2(d0, bias, 2*q+6, j0, j1, s3)
		}
		for ; q < q1; q++ {
			wa := wq[q*k : q*k+k]
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
// d (indexed from column j0), skipping channels at j1 or beyond.
func store2(d []int32, bias []int32, j, j0, j1 int, t int64) {
	lo, hi := split2(t)
	if j < j1 {
		d[j-j0] = lo + bias[j]
	}
	if j+1 < j1 {
		d[j+1-j0] = hi + bias[j+1]
	}
}

// store8 decodes four two-lane sums into d[0:8] (plus bias).
func store8(d, bias []int32, s0, s1, s2, s3 int64) {
	d, bias = d[:8], bias[:8]
	l, h := split2(s0)
	d[0], d[1] = l+bias[0], h+bias[1]
	l, h = split2(s1)
	d[2], d[3] = l+bias[2], h+bias[3]
	l, h = split2(s2)
	d[4], d[5] = l+bias[4], h+bias[5]
	l, h = split2(s3)
	d[6], d[7] = l+bias[6], h+bias[7]
}

// dot1x4 returns the two-lane dot products of row a with the four interleaved pair columns
// w (w[4*kk+t] is pair t at depth kk; len(w) >= 4*len(a), checked).
//
//go:noinline
func dot1x4(a []int8, w []int64) (s0, s1, s2, s3 int64) {
	w = w[:4*len(a)]
	p := unsafe.Pointer(unsafe.SliceData(w))
	for kk, x := range a {
		v := int64(x)
		q := (*[4]int64)(unsafe.Add(p, kk*32)) // in bounds: kk < len(a) and len(w) = 4*len(a)
		s0 += v * q[0]
		s1 += v * q[1]
		s2 += v * q[2]
		s3 += v * q[3]
	}
	return
}
