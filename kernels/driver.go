package kernels

import (
	"sync/atomic"
)

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

// zeroBuf is a shared, never written buffer of zeros that stands in for a nil bias.
var zeroBuf atomic.Pointer[[]int32]

// zerosInt32 returns n zeros from zeroBuf (read-only; allocates only to grow it).
func zerosInt32(n int) []int32 {
	for {
		p := zeroBuf.Load()
		if p != nil && len(*p) >= n {
			return (*p)[:n]
		}
		b := make([]int32, max(n, 1024))
		if zeroBuf.CompareAndSwap(p, &b) {
			return b[:n]
		}
	}
}

func biasOrZero(bias []int32, n int) []int32 {
	if bias != nil {
		return bias
	}
	return zerosInt32(n)
}

var accPool freeList[[]int32]

func getAcc(n int) *[]int32 {
	c := highWater(&hwm32, n)
	b := accPool.Get()
	if cap(*b) < n {
		*b = make([]int32, n, c)
	}
	*b = (*b)[:n]
	return b
}

// Pooled buffers (accPool, padPool, simdScratch; see freeList) are shared by calls of every shape, so a
// buffer grown for one shape may be handed to a call with a larger one. Growing them to the
// largest length requested so far (per element type) makes the sizes converge after one
// warm-up run, also when concurrent calls create extra pooled objects.
var hwm8, hwm16, hwm32 atomic.Int64

// highWater records n in h and returns the largest length recorded so far.
func highWater(h *atomic.Int64, n int) int {
	for {
		c := h.Load()
		if int64(n) <= c {
			return int(c)
		}
		if h.CompareAndSwap(c, int64(n)) {
			return n
		}
	}
}

// tiler computes the block of rows [i0,i1) and columns [j0,j1) of a GEMM-like problem.
// Implementations are pooled structs holding the operands (no closures: a closure handed to
// the worker pool escapes and costs an allocation per call).
type tiler interface{ tile(i0, i1, j0, j1 int) }

// tileSplit turns task indices into tiles for parallelFor.
type tileSplit struct {
	t                tiler
	m, n, rb, cb, nc int
}

func (s *tileSplit) runTask(i int) {
	r, c := i/s.nc, i%s.nc
	s.t.tile(r*s.rb, min((r+1)*s.rb, s.m), c*s.cb, min((c+1)*s.cb, s.n))
}

var splitPool = freeList[tileSplit]{}

// tiles splits an m x n problem into row blocks and column blocks and calls t.tile for each,
// in parallel when the problem is large enough.
func tiles(m, n, k int, t tiler) { tilesRB(m, n, k, rowBlock, t) }

// tilesRB is tiles with row blocks of rowBlock rows (when it blocks rows).
func tilesRB(m, n, k, rowBlock int, t tiler) {
	rb := rowBlock
	cb := n
	par := m*n*k >= parallelMinMACs
	if par {
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
		t.tile(0, m, 0, n)
		return
	}
	if !par {
		for r := 0; r < nr; r++ {
			for c := 0; c < nc; c++ {
				t.tile(r*rb, min((r+1)*rb, m), c*cb, min((c+1)*cb, n))
			}
		}
		return
	}
	s := splitPool.Get()
	*s = tileSplit{t: t, m: m, n: n, rb: rb, cb: cb, nc: nc}
	parallelFor(nr*nc, s)
	s.t = nil
	splitPool.Put(s)
}

// gemmTiles is the tiler of gemmInt32 and gemmInt8.
type gemmTiles struct {
	p     *impl
	dst32 []int32
	dst8  []int8
	ldd   int
	a     []int8
	lda   int
	w     *PackedInt8
	bias  []int32
	rq    *Requant
}

var gemmTilesPool = freeList[gemmTiles]{}

func (g *gemmTiles) tile(i0, i1, j0, j1 int) {
	p, ldd, lda := g.p, g.ldd, g.lda
	switch {
	case g.dst32 != nil:
		p.gemm32(g.dst32[i0*ldd+j0:], ldd, g.a[i0*lda:], lda, i1-i0, g.w, g.bias, j0, j1)
	case p.gemm8 != nil:
		p.gemm8(g.dst8[i0*ldd+j0:], ldd, g.a[i0*lda:], lda, i1-i0, g.w, g.bias, g.rq, j0, j1)
	default:
		// Accumulate the tile in int32, then run the reference epilogue on it while it is
		// still in cache.
		nc := j1 - j0
		bp := getAcc((i1 - i0) * nc)
		acc := *bp
		p.gemm32(acc, nc, g.a[i0*lda:], lda, i1-i0, g.w, g.bias, j0, j1)
		rq := g.rq
		sub := Requant{M0: rq.M0[j0:j1], Shift: rq.Shift[j0:j1], ZeroPoint: rq.ZeroPoint, Min: rq.Min, Max: rq.Max}
		requantRows(g.dst8[i0*ldd+j0:], ldd, acc, nc, i1-i0, nc, &sub)
		accPool.Put(bp)
	}
}

func runGEMM(p *impl, dst32 []int32, dst8 []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant) {
	if m == 0 {
		return
	}
	g := gemmTilesPool.Get()
	*g = gemmTiles{p: p, dst32: dst32, dst8: dst8, ldd: ldd, a: a, lda: lda, w: w, bias: biasOrZero(bias, w.n), rq: rq}
	rb := rowBlock
	if p.rowBlock > 0 {
		rb = p.rowBlock
	}
	tilesRB(m, w.n, w.k, rb, g)
	*g = gemmTiles{}
	gemmTilesPool.Put(g)
}

func gemmInt32(p *impl, dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32) {
	runGEMM(p, dst, nil, ldd, a, lda, m, w, bias, nil)
}

func gemmInt8(p *impl, dst []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant) {
	runGEMM(p, nil, dst, ldd, a, lda, m, w, bias, rq)
}
