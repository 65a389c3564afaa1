package kernels

import "sync"

// parallelMinMACs is the problem size (multiply-adds) below which a call stays on the calling
// goroutine. BenchmarkCrossover (AVX-512 VNNI, 2 cores shared with other jobs) found two
// threads slower than one up to 128^3 = 2^21 multiply-adds, mixed at 192^3 and faster from
// 256^3 on: waking a helper costs microseconds when the other core is busy. 2^22 sits between.
var parallelMinMACs = 1 << 22

// Row and column blocking of the driver. A task is a block of rowBlock rows by colBlock
// columns; colBlock is a multiple of panelN.
const (
	rowBlock = 64
	colBlock = 256
)

var zeroBias sync.Pool

func biasOrZero(bias []int32, n int) ([]int32, func()) {
	if bias != nil {
		return bias, func() {}
	}
	if b, ok := zeroBias.Get().(*[]int32); ok && len(*b) >= n {
		return (*b)[:n], func() { zeroBias.Put(b) }
	}
	b := make([]int32, n)
	return b, func() { zeroBias.Put(&b) }
}

var accPool sync.Pool

func getAcc(n int) *[]int32 {
	if b, ok := accPool.Get().(*[]int32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]int32, n)
	return &b
}

// tiles splits an m x n problem into row blocks and column blocks and calls fn for each, in
// parallel when the problem is large enough.
func tiles(m, n, k int, fn func(i0, i1, j0, j1 int)) {
	rb := rowBlock
	cb := n
	if m*n*k >= parallelMinMACs {
		// Enough work for several tasks: keep rows in blocks, split columns when there are
		// few rows (GEMV-like shapes) so both cores get work.
		if m < 2*rowBlock {
			rb = m
			cb = colBlock
			if n <= 2*colBlock {
				cb = max((n/2+panelN-1)/panelN*panelN, panelN)
			}
		}
	} else {
		rb = max(m, 1)
	}
	nr := (m + rb - 1) / rb
	nc := (n + cb - 1) / cb
	if nr*nc == 1 {
		fn(0, m, 0, n)
		return
	}
	parallelForOrSerial(m*n*k >= parallelMinMACs, nr*nc, func(t int) {
		r, c := t/nc, t%nc
		fn(r*rb, min((r+1)*rb, m), c*cb, min((c+1)*cb, n))
	})
}

func parallelForOrSerial(par bool, n int, fn func(int)) {
	if par {
		parallelFor(n, fn)
		return
	}
	for i := 0; i < n; i++ {
		fn(i)
	}
}

func gemmInt32(p *impl, dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32) {
	if m == 0 {
		return
	}
	bias, done := biasOrZero(bias, w.n)
	defer done()
	tiles(m, w.n, w.k, func(i0, i1, j0, j1 int) {
		p.gemm32(dst[i0*ldd+j0:], ldd, a[i0*lda:], lda, i1-i0, w, bias, j0, j1)
	})
}

func gemmInt8(p *impl, dst []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant) {
	if m == 0 {
		return
	}
	bias, done := biasOrZero(bias, w.n)
	defer done()
	if p.gemm8 != nil {
		tiles(m, w.n, w.k, func(i0, i1, j0, j1 int) {
			p.gemm8(dst[i0*ldd+j0:], ldd, a[i0*lda:], lda, i1-i0, w, bias, rq, j0, j1)
		})
		return
	}
	tiles(m, w.n, w.k, func(i0, i1, j0, j1 int) {
		// Accumulate the tile in int32, then run the reference epilogue on it while it is
		// still in cache.
		nc := j1 - j0
		bp := getAcc((i1 - i0) * nc)
		acc := *bp
		p.gemm32(acc, nc, a[i0*lda:], lda, i1-i0, w, bias, j0, j1)
		sub := Requant{M0: rq.M0[j0:j1], Shift: rq.Shift[j0:j1], ZeroPoint: rq.ZeroPoint, Min: rq.Min, Max: rq.Max}
		for i := i0; i < i1; i++ {
			requantRow(dst[i*ldd+j0:i*ldd+j1], acc[(i-i0)*nc:(i-i0+1)*nc], &sub)
		}
		accPool.Put(bp)
	})
}
