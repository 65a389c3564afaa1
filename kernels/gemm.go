package kernels

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/quant"
)

// Requant is the fused epilogue:
//
//	out = clamp(quant.MultiplyByQuantizedMultiplier(acc, M0[c], Shift[c]) + ZeroPoint, Min, Max)
//
// len(M0) == len(Shift) == N (per output channel; callers expand a per-tensor multiplier to N
// entries). Each (M0, Shift) pair must be valid in the sense of quant.Multiplier.Valid, and
// -128 <= Min <= Max <= 127.
type Requant struct {
	M0, Shift []int32
	ZeroPoint int32
	Min, Max  int32 // clamp bounds in the output's integer domain; fused ReLU/ReLU6 tighten them
}

func (rq *Requant) check(n int, fn string) {
	if rq == nil {
		panic("kernels: " + fn + ": nil Requant")
	}
	if len(rq.M0) != n || len(rq.Shift) != n {
		panic(fmt.Sprintf("kernels: %s: len(M0)=%d len(Shift)=%d, want N=%d", fn, len(rq.M0), len(rq.Shift), n))
	}
	if rq.Min > rq.Max || rq.Min < math.MinInt8 || rq.Max > math.MaxInt8 {
		panic(fmt.Sprintf("kernels: %s: clamp bounds [%d,%d] not inside [-128,127]", fn, rq.Min, rq.Max))
	}
	for c := range rq.M0 {
		if !(quant.Multiplier{M0: rq.M0[c], Shift: rq.Shift[c]}).Valid() {
			panic(fmt.Sprintf("kernels: %s: invalid multiplier (M0=%d, Shift=%d) for channel %d", fn, rq.M0[c], rq.Shift[c], c))
		}
	}
}

func checkMatrix(name, fn string, length, ld, rows, cols int) {
	if rows == 0 {
		return
	}
	if ld < cols {
		panic(fmt.Sprintf("kernels: %s: leading dimension of %s is %d < %d", fn, name, ld, cols))
	}
	if need := (rows-1)*ld + cols; length < need {
		panic(fmt.Sprintf("kernels: %s: len(%s) = %d < %d", fn, name, length, need))
	}
}

func checkGEMM(fn string, ldst, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32) {
	if w == nil {
		panic("kernels: " + fn + ": nil weights")
	}
	checkGEMMDims(fn, ldst, ldd, a, lda, m, w.k, w.n, bias)
}

// checkGEMMDims panics unless a (m x k, stride lda), dst (m x n, stride ldd, length ldst) and
// bias (nil or n) fit: the shape checks common to GEMMInt8 and GEMMInt4.
func checkGEMMDims(fn string, ldst, ldd int, a []int8, lda, m, k, n int, bias []int32) {
	if m < 0 {
		panic(fmt.Sprintf("kernels: %s: m = %d < 0", fn, m))
	}
	checkMatrix("a", fn, len(a), lda, m, k)
	checkMatrix("dst", fn, ldst, ldd, m, n)
	if bias != nil && len(bias) != n {
		panic(fmt.Sprintf("kernels: %s: len(bias) = %d, want N = %d", fn, len(bias), n))
	}
}

// GEMMInt8 computes, for i < m and j < N,
//
//	dst[i*ldd+j] = epilogue(sum_k a[i*lda+k]*w[j][k] + bias[j])
//
// with the epilogue rq. bias has length N (or is nil for zeros) and is already corrected for the
// input zero point by the caller (see PackedInt8.RowSums).
func GEMMInt8(dst []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant) {
	checkGEMM("GEMMInt8", len(dst), ldd, a, lda, m, w, bias)
	rq.check(w.n, "GEMMInt8")
	gemmInt8(current.Load(), dst, ldd, a, lda, m, w, bias, rq)
}

// GEMMInt8Int32 is GEMMInt8 without the epilogue: dst[i*ldd+j] = sum_k a[i*lda+k]*w[j][k] + bias[j].
func GEMMInt8Int32(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32) {
	checkGEMM("GEMMInt8Int32", len(dst), ldd, a, lda, m, w, bias)
	gemmInt32(current.Load(), dst, ldd, a, lda, m, w, bias)
}

// RequantizeInt32 applies the epilogue rq to consecutive rows of n int32 values (the channel of
// src[i] is i mod n) and stores the results in dst[:len(src)]. len(src) must be a multiple of n.
func RequantizeInt32(dst []int8, src []int32, n int, rq *Requant) {
	if n <= 0 || len(src)%n != 0 {
		panic(fmt.Sprintf("kernels: RequantizeInt32: len(src) = %d is not a multiple of n = %d", len(src), n))
	}
	if len(dst) < len(src) {
		panic(fmt.Sprintf("kernels: RequantizeInt32: len(dst) = %d < len(src) = %d", len(dst), len(src)))
	}
	rq.check(n, "RequantizeInt32")
	if p := current.Load(); p.requant != nil {
		p.requant(dst, src, n, rq)
		return
	}
	requantRows(dst, n, src, n, len(src)/n, n, rq)
}

// requantRow is the reference epilogue on one row of accumulators; it is the only place where
// the kernels turn int32 into int8 and it calls quant directly (see requantRows).
func requantRow(dst []int8, src []int32, rq *Requant) {
	requantRows(dst, len(src), src, len(src), 1, len(src), rq)
}

// requantRows applies the reference epilogue to rows x n accumulators (strides lds and ldd;
// channel j of every row uses rq.M0[j], rq.Shift[j]). It is quant.Requantize with the multiplier
// constants prepared once per block of channels (quant.PreparedMultiplier) instead of once per
// element, and the clamp written with min/max (branch-free): the clamp of a fused ReLU is taken
// about half of the time at random, and a mispredicted branch per element cost more than the
// multiplication (TestRequantizeInt32 compares with quant.Requantize).
func requantRows(dst []int8, ldd int, src []int32, lds int, rows, n int, rq *Requant) {
	const block = 64
	var prep [block]quant.PreparedMultiplier
	zp, lo, hi := int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max)
	if n <= block && lds == n && ldd == n {
		// Contiguous rows of few channels (the common conv case): one flat loop with a wrapping
		// channel index instead of re-slicing every short row.
		p := prep[:n]
		for j := range p {
			p[j] = quant.Multiplier{M0: rq.M0[j], Shift: rq.Shift[j]}.Prepare()
		}
		s := src[:rows*n]
		d := dst[:len(s)]
		j := 0
		for i, acc := range s {
			v := int64(p[j].Apply(acc)) + zp
			d[i] = int8(min(max(v, lo), hi))
			if j++; j == n {
				j = 0
			}
		}
		return
	}
	for c0 := 0; c0 < n; c0 += block {
		c1 := min(c0+block, n)
		p := prep[:c1-c0]
		for j := range p {
			p[j] = quant.Multiplier{M0: rq.M0[c0+j], Shift: rq.Shift[c0+j]}.Prepare()
		}
		for r := 0; r < rows; r++ {
			s := src[r*lds+c0 : r*lds+c1]
			d := dst[r*ldd+c0 : r*ldd+c1]
			d, p := d[:len(s)], p[:len(s)]
			for j, acc := range s {
				v := int64(p[j].Apply(acc)) + zp
				d[j] = int8(min(max(v, lo), hi))
			}
		}
	}
}
