//go:build !purego && (amd64 || arm64)

package kernels

import (
	"math"
	"unsafe"

	"github.com/qatgo/qatgo/quant"
)

// simdKernels is the set of micro-kernels of one SIMD path. All use the shared panel layout
// (pack.go), so the driver is common to amd64 and arm64.
type simdKernels struct {
	mr     int // rows per micro-tile
	wideN  int // columns of the wide kernel (a multiple of panelN)
	wide   func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
	narrow func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int) // mr x panelN
	// wideQ and narrowQ, if not nil, are wide and narrow with the requantization epilogue
	// fused (int8 stores; per-column constants from epTable).
	// mid and midQ, if not nil, are the mr x 2*panelN kernels for a remainder of 32 columns
	// (wideN = 48).
	mid            func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
	midQ           func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int8, ldc int, ep *int64, zp, lo, hi int64)
	wideQ, narrowQ func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int8, ldc int, ep *int64, zp, lo, hi int64)
	gemv           func(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)
	// wide16, if not nil, replaces wide and narrow (both mr x panelN, wideN == panelN) in the
	// GEMM core: the same kernel reading the int16 copy of the panel (PackedInt8.panel16, w as
	// *int8 and ts in bytes).
	wide16 func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
	// sum returns the sum of n signed bytes (n a positive multiple of 64). It is set on amd64,
	// where weights are stored as w+128 and the kernels need roff = -128*sum(row); nil on arm64
	// (signed weights, no correction).
	sum func(p *int8, n int) int32
	// convKernel, if not nil, runs convolutions with KW*InC <= 4 as an implicit GEMM straight
	// from the padded image (convImplicit): the mr x 16 micro-kernel with a K-group stride
	// argument, reading int8 activations, or int16 ones on paths with sext16 (AVX2).
	// requantCorr, if not nil, is the epilogue subtracting 128 times a per-row sum read from
	// the accumulator tile; without it convImplicit subtracts in Go and runs requant.
	convKernel  func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int, kgs int)
	requantCorr func(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64, corr *int32, cs int)
	// dwRow16 or dwRow8, if not nil, computes one output row of a depthwise convolution for
	// the first c16 channels (a multiple of 16), with weights widened to int16 (dwRowAVX2) or
	// as they are (dwRowNEON); see simdKernels.depthwise.
	dwRow16 func(acc *int32, src *int8, w *int16, bias *int32, c16, cs, kh, kw, rowStride, pixStride, ow int)
	dwRow8  func(acc *int32, src *int8, w *int8, bias *int32, c16, cs, kh, kw, rowStride, pixStride, ow int)
	// sumRows, if not nil, stores the sums of rows x n signed bytes (stride lda) in dst.
	sumRows func(dst *int32, a *int8, lda int, rows int, n int)
	// sext16, if not nil, converts n int8 values to int16 (n a positive multiple of 16): the
	// GEMM kernels of this path take activations sign-extended to int16 (rows of kp int16,
	// lda in bytes), converted once per call by the driver.
	sext16 func(dst *int16, src *int8, n int)
	// gemv4, if not nil, is the W4A8 GEMV kernel (see int4_amd64.s); nil: portable.
	gemv4 func(a *int8, nb, groups int, w *byte, ts, nt int, sc, gcorr, off, c *int32)
	// requant applies the epilogue to rows x n values (n a positive multiple of 8, strides
	// in elements); nil: Go only.
	requant func(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64)
	// gemmTiles, if not nil, runs a GEMM (int32 results in dst32, or int8 ones in dst8) on a
	// matrix unit (AMX on amd64, gemmamx_amd64.go) with off holding the column offsets as in
	// gemm; it reports false, having done nothing, where it does not apply.
	gemmTiles func(k *simdKernels, sc *simdScratch, dst32 []int32, dst8 []int8, ldd int, a []int8, lda, m int, w *PackedInt8, off []int32, rq *Requant, j0, j1 int) bool
}

func newSIMDImpl(name string, k *simdKernels) *impl {
	p := &impl{
		name:     name,
		rowBlock: rowBlock / k.mr * k.mr,
		gemm32: func(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, j0, j1 int) {
			k.gemm(dst, nil, ldd, a, lda, m, w, bias, nil, j0, j1)
		},
		gemm8: func(dst []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant, j0, j1 int) {
			k.gemm(nil, dst, ldd, a, lda, m, w, bias, rq, j0, j1)
		},
		conv2DDirect: k.conv,
		depthwise:    k.depthwiseOrPortable(),
		requant: func(dst []int8, src []int32, n int, rq *Requant) {
			k.requantRows(dst, n, src, n, len(src)/n, n, rq, 0)
		},
		gemv4: func(dst []int32, a []int8, w *PackedInt4, bias []int32, j0, j1 int) {
			k.int4(dst, a, w, bias, j0, j1)
		},
	}
	if k.gemv != nil {
		p.rowCorr, p.gemv8 = k.rowOffset, k.gemv8Plan
		p.requantCols = func(dst []int8, acc []int32, rq *Requant, j0, j1 int) {
			k.requantRows(dst[j0:], len(dst), acc[j0:], len(acc), 1, j1-j0, rq, j0)
		}
	}
	if k.gemv4 != nil {
		p.gemv4Plan = k.gemv4PlanTiles
	}
	return p
}

// gemv8Plan runs the GEMV kernel on the tiles of columns [j0, j1) (see impl.gemv8).
func (k *simdKernels) gemv8Plan(acc []int32, a []int8, w *PackedInt8, off []int32, j0, j1 int) {
	ts := w.kp * panelN
	t0, t1 := j0/panelN, (j1+panelN-1)/panelN
	k.gemv(&a[0], w.kp/4, &w.panel[t0*ts], ts, t1-t0, &off[j0], &acc[j0])
}

// gemv4PlanTiles runs the W4A8 GEMV kernel on the tiles of columns [j0, j1) (see impl.gemv4Plan).
func (k *simdKernels) gemv4PlanTiles(acc []int32, a []int8, w *PackedInt4, off, gcorr []int32, j0, j1 int) {
	ts := w.k * 8
	t0, t1 := j0/panelN, (j1+panelN-1)/panelN
	k.gemv4(&a[0], w.group/8, w.groups, &w.panel[t0*ts], ts, t1-t0, &w.pscales[t0*w.groups*panelN], &gcorr[0], &off[j0], &acc[j0])
}

// simdScratch holds the per-call buffers of the driver (pooled).
type simdScratch struct {
	apad []int8  // mr rows of kp bytes
	a16  []int16 // activations widened to int16 (paths with sext16)
	roff []int32 // -128 * row sums
	off  []int32 // column offsets, padded to whole tiles
	acc  []int32 // mr x ncp int32 results (int8 output or partial tiles)
	ep   []int64 // epilogue constants of the fused-requantization kernels (epTable)
}

// epTable stores, per 8 columns j0.. (nc columns, zero-padded to whole tiles of ncp), the
// epilogue constants of quant.Requantize as int64 lanes: 8 M0, 8 rounding terms 2^(30-shift),
// 8 right shifts 31-shift (shift clamped as quant.Multiplier.Prepare does).
func epTable(ep []int64, rq *Requant, j0, nc, ncp int) {
	for h := 0; h < ncp/8; h++ {
		e := ep[h*24 : h*24+24]
		for i := 0; i < 8; i++ {
			j := h*8 + i
			if j >= nc {
				e[i], e[8+i], e[16+i] = 0, 1, 1
				continue
			}
			total := int64(31 - min(max(rq.Shift[j0+j], quant.MinShift), quant.MaxShift))
			e[i], e[8+i], e[16+i] = int64(rq.M0[j0+j]), int64(1)<<(total-1), total
		}
	}
}

var simdPool = freeList[simdScratch]{}

func growI8(b []int8, n int) []int8 {
	c := highWater(&hwm8, n)
	if cap(b) < n {
		return make([]int8, n, c)
	}
	return b[:n]
}

func growI16(b []int16, n int) []int16 {
	c := highWater(&hwm16, n)
	if cap(b) < n {
		return make([]int16, n, c)
	}
	return b[:n]
}

func growI64(b []int64, n int) []int64 {
	if cap(b) < n {
		return make([]int64, n)
	}
	return b[:n]
}

func growI32(b []int32, n int) []int32 {
	c := highWater(&hwm32, n)
	if cap(b) < n {
		return make([]int32, n, c)
	}
	return b[:n]
}

// rowOffsets stores rowOffset of rows [0,m) of a (stride lda, depth n) in dst.
func (k *simdKernels) rowOffsets(dst []int32, a []int8, lda, m, n int) {
	if k.sum == nil {
		clear(dst[:m])
		return
	}
	if k.sumRows != nil && m > 0 {
		_ = a[(m-1)*lda+n-1]
		k.sumRows(&dst[0], &a[0], lda, m, n)
	} else {
		for i := 0; i < m; i++ {
			dst[i] = k.rowSum(a[i*lda : i*lda+n])
		}
	}
	for i := range dst[:m] {
		dst[i] *= -128
	}
}

// rowOffset returns the per-row correction roff = -128*sum(a) (0 without sum).
func (k *simdKernels) rowOffset(a []int8) int32 {
	if k.sum == nil {
		return 0
	}
	return -128 * k.rowSum(a)
}

func (k *simdKernels) rowSum(a []int8) int32 {
	n := len(a) &^ 63
	if k.sum == nil {
		n = 0
	}
	var s int32
	if n > 0 {
		s = k.sum(&a[0], n)
	}
	for _, v := range a[n:] {
		s += int32(v)
	}
	return s
}

// requantRows applies the epilogue to rows of acc (stride lda) into dst (stride ldd), using
// the vector routine for multiples of 8 and the reference for the tail.
func (k *simdKernels) requantRows(dst []int8, ldd int, acc []int32, lda, rows, n int, rq *Requant, j0 int) {
	m0, sh := rq.M0[j0:j0+n], rq.Shift[j0:j0+n]
	n8 := n &^ 7
	if k.requant == nil || !rq.int32Safe() {
		n8 = 0
	}
	if n8 > 0 && rows > 0 {
		k.requant(&dst[0], ldd, &acc[0], lda, rows, &m0[0], &sh[0], n8, int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max))
	}
	if n8 < n {
		sub := Requant{M0: m0[n8:], Shift: sh[n8:], ZeroPoint: rq.ZeroPoint, Min: rq.Min, Max: rq.Max}
		for r := 0; r < rows; r++ {
			requantRow(dst[r*ldd+n8:r*ldd+n], acc[r*lda+n8:r*lda+n], &sub)
		}
	}
}

// gemm computes rows [0,m) and columns [j0,j1) (j0 a multiple of panelN) into dst32 (int32,
// no epilogue) or dst8 (with rq); both are indexed from column j0.
func (k *simdKernels) gemm(dst32 []int32, dst8 []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant, j0, j1 int) {
	sc := simdPool.Get()
	defer simdPool.Put(sc)
	kp := w.kp
	nc := j1 - j0
	ncp := (nc + panelN - 1) / panelN * panelN
	// Column offsets: bias, zero-padded to whole tiles.
	sc.off = growI32(sc.off, ncp+k.wideN)
	off := sc.off
	copy(off, bias[j0:j1])
	clear(off[nc:])

	if m < 3 && k.gemv != nil {
		k.gemvRows(sc, dst32, dst8, ldd, a, lda, m, w, rq, j0, j1)
		return
	}
	if k.gemmTiles != nil && k.gemmTiles(k, sc, dst32, dst8, ldd, a, lda, m, w, off, rq, j0, j1) {
		return
	}

	// Row offsets -128*sum_k a[i][k] for every row, and a zero-padded copy of the rows the
	// kernels cannot read in place (K not a multiple of 4, or the last partial row block).
	mr := k.mr
	mp := (m + mr - 1) / mr * mr
	sc.roff = growI32(sc.roff, mp)
	roff := sc.roff
	k.rowOffsets(roff, a, lda, m, w.k)
	clear(roff[m:])
	inPlace := m / mr * mr // rows read directly from a
	if w.k != kp {
		inPlace = 0
	}
	if inPlace < m {
		sc.apad = growI8(sc.apad, (mp-inPlace)*kp)
		clear(sc.apad)
		for i := inPlace; i < m; i++ {
			copy(sc.apad[(i-inPlace)*kp:], a[i*lda:i*lda+w.k])
		}
	}
	if k.sext16 != nil {
		a16 := k.widen(sc, a, lda, m, w.k, kp)
		k.compute(sc, dst32, dst8, ldd, a16, 2*kp, mp+simdMaxMR, nil, roff, m, w, off, rq, j0, j1)
		return
	}
	k.compute(sc, dst32, dst8, ldd, a, lda, inPlace, sc.apad, roff, m, w, off, rq, j0, j1)
}

// widen returns rows [0,m) of a (depth k) as int16 rows of kp values, zero-padded, plus
// simdMaxMR zero rows, viewed as bytes (row stride 2*kp bytes).
func (k *simdKernels) widen(sc *simdScratch, a []int8, lda, m, depth, kp int) []int8 {
	n := (m + simdMaxMR) * kp
	sc.a16 = growI16(sc.a16, n)
	a16 := sc.a16
	if lda == kp && depth == kp {
		// Contiguous rows (patch matrices): one call over all of them.
		t := m * kp
		t16 := t &^ 15
		if t16 > 0 {
			k.sext16(&a16[0], &a[0], t16)
		}
		for j := t16; j < t; j++ {
			a16[j] = int16(a[j])
		}
		clear(a16[t:])
		return unsafe.Slice((*int8)(unsafe.Pointer(&a16[0])), 2*n)
	}
	k16 := depth &^ 15
	for i := 0; i < m; i++ {
		row := a[i*lda : i*lda+depth]
		d := a16[i*kp : (i+1)*kp]
		if k16 > 0 {
			k.sext16(&d[0], &row[0], k16)
		}
		for j := k16; j < depth; j++ {
			d[j] = int16(row[j])
		}
		clear(d[depth:])
	}
	clear(a16[m*kp:])
	return unsafe.Slice((*int8)(unsafe.Pointer(&a16[0])), 2*n)
}

// compute runs the micro-kernels on rows [0,m): row blocks starting below inPlace are read
// from a (stride lda, readable up to the padded depth), the others from apad (stride kp,
// starting at row inPlace). roff holds the row corrections (at least m rounded up to mr),
// off the column offsets of columns j0.. padded to whole tiles plus wideN.
func (k *simdKernels) compute(sc *simdScratch, dst32 []int32, dst8 []int8, ldd int, a []int8, lda, inPlace int, apad []int8, roff []int32, m int, w *PackedInt8, off []int32, rq *Requant, j0, j1 int) {
	mr, kp, kg, ts := k.mr, w.kp, w.kp/4, w.kp*panelN
	nc := j1 - j0
	ncp := (nc + panelN - 1) / panelN * panelN
	panel := w.panel[j0/panelN*ts:]
	wide, narrow := k.wide, k.narrow
	if k.wide16 != nil {
		p16 := w.panel16()[j0/panelN*ts:]
		panel = unsafe.Slice((*int8)(unsafe.Pointer(&p16[0])), 2*len(p16))
		ts *= 2
		wide, narrow = k.wide16, k.wide16
	}
	sc.acc = growI32(sc.acc, mr*k.wideN)
	acc := sc.acc
	ldacc := k.wideN
	// Whole int8 tiles run the kernels with the fused epilogue when there are enough rows to
	// amortize the constants.
	var ep []int64
	if dst8 != nil && k.wideQ != nil && m >= 2*mr && rq.int32Safe() {
		sc.ep = growI64(sc.ep, ncp/8*24)
		ep = sc.ep
		epTable(ep, rq, j0, nc, ncp)
	}
	zp, lo, hi := int64(0), int64(0), int64(0)
	if rq != nil {
		zp, lo, hi = int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max)
	}
	// Column panels outer (the weights of one panel stay in L1), row blocks inner.
	for c := 0; c < ncp; {
		width := panelN
		kern, kq := narrow, k.narrowQ
		switch {
		case c+k.wideN <= ncp:
			width, kern, kq = k.wideN, wide, k.wideQ
		case k.mid != nil && c+2*panelN <= ncp:
			width, kern, kq = 2*panelN, k.mid, k.midQ
		}
		wp := &panel[c/panelN*ts]
		cols := min(width, nc-c)
		for r0 := 0; r0 < m; r0 += mr {
			rows := min(mr, m-r0)
			var ap *int8
			ald := kp
			if r0 < inPlace {
				ap, ald = &a[r0*lda], lda
			} else {
				ap = &apad[(r0-inPlace)*kp]
			}
			if dst32 != nil && rows == mr && cols == width {
				kern(ap, ald, wp, ts, kg, &off[c], &roff[r0], &dst32[r0*ldd+c], ldd*4)
				continue
			}
			if ep != nil && rows == mr && cols == width {
				kq(ap, ald, wp, ts, kg, &off[c], &roff[r0], &dst8[r0*ldd+c], ldd, &ep[c/8*24], zp, lo, hi)
				continue
			}
			kern(ap, ald, wp, ts, kg, &off[c], &roff[r0], &acc[0], ldacc*4)
			if dst32 != nil {
				for r := 0; r < rows; r++ {
					copy(dst32[(r0+r)*ldd+c:(r0+r)*ldd+c+cols], acc[r*ldacc:r*ldacc+cols])
				}
			} else {
				k.requantRows(dst8[r0*ldd+c:], ldd, acc, ldacc, rows, cols, rq, j0+c)
			}
		}
		c += width
	}
}

// conv computes Conv2DInt8 for shapes that are not pointwise: the patches of one image are
// written once, zero-padded to the kernels' depth (rows readable in place, no second copy),
// with their row sums computed on the way; then the GEMM core runs on them, split over
// threads for large images.
func (k *simdKernels) conv(dst, src []int8, batch int, s ConvShape, inZero int8, w *PackedInt8, bias []int32, rq *Requant, scratch []int8) {
	if k.convKernel != nil && s.KW*s.InC <= 4 && w.n%panelN != 0 {
		k.convImplicit(dst, src, batch, s, inZero, w, bias, rq)
		return
	}
	oh, ow := s.OutH(), s.OutW()
	m := oh * ow
	kp := w.kp
	need := (m + simdMaxMR) * kp
	if len(scratch) < need {
		scratch = make([]int8, need)
	}
	col := scratch[:need]
	sc := simdPool.Get()
	sc.roff = growI32(sc.roff, m+simdMaxMR)
	roff := sc.roff
	clear(roff)
	clear(col[m*kp:])
	bias = biasOrZero(bias, w.n)
	np := (w.n + panelN - 1) / panelN * panelN
	sc.off = growI32(sc.off, np+k.wideN)
	off := sc.off
	copy(off, bias)
	clear(off[w.n:])
	wsc := simdPool.Get() // holds the widened patches (sext16 paths)
	defer simdPool.Put(wsc)
	defer simdPool.Put(sc)
	inImg, outImg := s.InH*s.InW*s.InC, m*s.OutC
	for b := 0; b < batch; b++ {
		if k.sum != nil && k.sumRows == nil && s.KW*s.InC <= 8 {
			// The small-channel patch builder sums the words it moves for free.
			im2colRows(col, kp, src[b*inImg:(b+1)*inImg], s, inZero, roff)
			for i := range roff[:m] {
				roff[i] *= -128
			}
		} else {
			im2colRows(col, kp, src[b*inImg:(b+1)*inImg], s, inZero, nil)
			k.rowOffsets(roff, col, kp, m, kp)
		}
		out := dst[b*outImg : (b+1)*outImg]
		a, lda := col, kp
		if k.sext16 != nil {
			a, lda = k.widen(wsc, col, kp, m, kp, kp), 2*kp
		}
		ct := convTilesPool.Get()
		*ct = convTiles{k: k, out: out, outC: s.OutC, a: a, lda: lda, m: m, roff: roff, w: w, off: off, rq: rq}
		tiles(m, w.n, w.k, ct)
		*ct = convTiles{}
		convTilesPool.Put(ct)
	}
}

// convTiles is the tiler of simdKernels.conv over the patch matrix of one image.
type convTiles struct {
	k         *simdKernels
	out       []int8
	outC      int
	a         []int8
	lda, m    int
	roff, off []int32
	w         *PackedInt8
	rq        *Requant
}

var convTilesPool = freeList[convTiles]{}

func (c *convTiles) tile(i0, i1, j0, j1 int) {
	sc := simdPool.Get()
	c.k.compute(sc, nil, c.out[i0*c.outC+j0:], c.outC, c.a[i0*c.lda:], c.lda, c.m+simdMaxMR, nil, c.roff[i0:], i1-i0, c.w, c.off[j0:], c.rq, j0, j1)
	simdPool.Put(sc)
}

// simdMaxMR bounds the rows per micro-tile of every SIMD path.
const simdMaxMR = 8

// gemvRows handles one or two rows with the GEMV kernel (all tiles of the row in one call).
func (k *simdKernels) gemvRows(sc *simdScratch, dst32 []int32, dst8 []int8, ldd int, a []int8, lda, m int, w *PackedInt8, rq *Requant, j0, j1 int) {
	kp, kg, ts := w.kp, w.kp/4, w.kp*panelN
	nc := j1 - j0
	ncp := (nc + panelN - 1) / panelN * panelN
	panel := w.panel[j0/panelN*ts:]
	sc.acc = growI32(sc.acc, 2*ncp)
	off, acc := sc.acc[:ncp], sc.acc[ncp:]
	for i := 0; i < m; i++ {
		row := a[i*lda : i*lda+w.k]
		ap := &row[0]
		if w.k != kp {
			sc.apad = growI8(sc.apad, kp)
			copy(sc.apad, row)
			clear(sc.apad[w.k:])
			ap = &sc.apad[0]
		}
		corr := k.rowOffset(row)
		for j := range off {
			off[j] = sc.off[j] + corr
		}
		if dst32 != nil && nc == ncp {
			k.gemv(ap, kg, &panel[0], ts, ncp/panelN, &off[0], &dst32[i*ldd])
			continue
		}
		k.gemv(ap, kg, &panel[0], ts, ncp/panelN, &off[0], &acc[0])
		if dst32 != nil {
			copy(dst32[i*ldd:i*ldd+nc], acc[:nc])
		} else {
			k.requantRows(dst8[i*ldd:], ldd, acc, ncp, 1, nc, rq, j0)
		}
	}
}

// int4 runs the W4A8 GEMV kernel for output channels [j0, j1) (dst indexed by channel).
func (k *simdKernels) int4(dst []int32, a []int8, w *PackedInt4, bias []int32, j0, j1 int) {
	if k.gemv4 == nil || w.panel == nil {
		gemv4Portable(dst, a, w, bias, j0, j1)
		return
	}
	sc := simdPool.Get()
	defer simdPool.Put(sc)
	g, groups := w.group, w.groups
	nc := j1 - j0
	ncp := (nc + panelN - 1) / panelN * panelN
	sc.off = growI32(sc.off, 2*ncp+groups)
	off, acc, gcorr := sc.off[:ncp], sc.off[ncp:2*ncp], sc.off[2*ncp:]
	copy(off, bias[j0:j1])
	clear(off[nc:])
	for i := range gcorr {
		gcorr[i] = 8 * k.rowSum(a[i*g:(i+1)*g])
	}
	ts := w.k * 8 // bytes per tile: K/8 blocks of 64
	t0 := j0 / panelN
	k.gemv4(&a[0], g/8, groups, &w.panel[t0*ts], ts, ncp/panelN, &w.pscales[t0*groups*panelN], &gcorr[0], &off[0], &acc[0])
	copy(dst[j0:j1], acc[:nc])
}

// convImplicit computes a convolution with KW*InC <= 4 (first layers: InC = 1 with KW <= 4)
// without patches: each kernel row is one K group of 4 bytes (zero weights past KW*InC), so
// the micro-kernel reads the rows of A in place from the zero-point-padded image, row stride
// StrideW*InC and K-group stride one padded image row. The compensation 128*sum(patch) that
// the u8 weights need comes from a spare output column whose weights are 1 (w.n is not a
// multiple of panelN), subtracted by the epilogue.
func (k *simdKernels) convImplicit(dst, src []int8, batch int, s ConvShape, inZero int8, w *PackedInt8, bias []int32, rq *Requant) {
	kwc, c := s.KW*s.InC, s.InC
	panel := w.implicitPanel(s.KH, kwc)
	oh, ow, n := s.OutH(), s.OutW(), w.n
	ncp := (n + panelN - 1) / panelN * panelN
	ph, pw := s.InH+s.PadTop+s.PadBottom, s.InW+s.PadLeft+s.PadRight
	lda := s.StrideW * c
	need := ph*pw*c + 8*lda + 8
	sc := simdPool.Get()
	defer simdPool.Put(sc)
	// The padded image: int8, or int16 on paths whose kernels take widened activations
	// (sext16, AVX2), viewed as bytes.
	var pad []int8
	var pad16 []int16
	if k.sext16 != nil {
		sc.a16 = growI16(sc.a16, need)
		pad16 = sc.a16
		pad = unsafe.Slice((*int8)(unsafe.Pointer(&pad16[0])), 2*need)
	} else {
		sc.apad = growI8(sc.apad, need)
		pad = sc.apad
	}
	sc.off = growI32(sc.off, ncp+simdMaxMR)
	off, roff := sc.off[:ncp], sc.off[ncp:ncp+simdMaxMR]
	clear(off)
	clear(roff)
	if bias != nil {
		copy(off, bias)
	}
	n8 := n &^ 7
	if !rq.int32Safe() {
		n8 = 0
	}
	par := batch*oh*ow*n*s.K() >= parallelMinMACs
	for b := 0; b < batch; b++ {
		img := src[b*s.InH*s.InW*c:]
		if pad16 != nil {
			z := int16(inZero)
			for i := range pad16 {
				pad16[i] = z
			}
			for y := 0; y < s.InH; y++ {
				row := pad16[((y+s.PadTop)*pw+s.PadLeft)*c:]
				for i, v := range img[y*s.InW*c : (y+1)*s.InW*c] {
					row[i] = int16(v)
				}
			}
		} else {
			fill(pad, inZero)
			for y := 0; y < s.InH; y++ {
				copy(pad[((y+s.PadTop)*pw+s.PadLeft)*c:], img[y*s.InW*c:(y+1)*s.InW*c])
			}
		}
		out := dst[b*oh*ow*n : (b+1)*oh*ow*n]
		ir := implicitPool.Get()
		*ir = implicitRows{k: k, s: s, pad: pad, out: out, panel: panel, off: off, roff: roff, rq: rq, ncp: ncp, n8: n8}
		if par {
			parallelFor(oh, ir)
		} else {
			for oy := 0; oy < oh; oy++ {
				ir.runTask(oy)
			}
		}
		*ir = implicitRows{}
		implicitPool.Put(ir)
	}
}

// implicitRows is the parallel task of convImplicit: task oy computes output row oy of one
// image.
type implicitRows struct {
	k         *simdKernels
	s         ConvShape
	pad, out  []int8
	panel     []int8
	off, roff []int32
	rq        *Requant
	ncp, n8   int
}

var implicitPool = freeList[implicitRows]{}

func (ir *implicitRows) runTask(oy int) {
	k, s, pad, out, panel, off, roff, rq, ncp, n8 := ir.k, ir.s, ir.pad, ir.out, ir.panel, ir.off, ir.roff, ir.rq, ir.ncp, ir.n8
	c, n := s.InC, s.OutC
	ow := s.OutW()
	pw := s.InW + s.PadLeft + s.PadRight
	lda, kgs := s.StrideW*c, pw*c
	ts := s.KH * 4 * panelN
	mr := k.mr
	esz := 1 // bytes per activation in pad
	if k.sext16 != nil {
		esz = 2
	}
	asc := simdPool.Get()
	asc.acc = growI32(asc.acc, mr*ncp)
	asc.off = growI32(asc.off, panelN) // epilogue tail buffer
	acc := asc.acc
	base := oy * s.StrideH * pw * c
	for ox0 := 0; ox0 < ow; ox0 += mr {
		rows := min(mr, ow-ox0)
		a := &pad[(base+ox0*lda)*esz]
		for t := 0; t < ncp/panelN; t++ {
			k.convKernel(a, lda*esz, &panel[t*ts], ts, s.KH, &off[t*panelN], &roff[0], &acc[t*panelN], ncp*4, kgs*esz)
		}
		d := out[(oy*ow+ox0)*n:]
		if k.requantCorr == nil {
			// Subtract the compensation here, then the plain epilogue.
			for r := 0; r < rows; r++ {
				ar := acc[r*ncp : r*ncp+n+1]
				corr := 128 * ar[n]
				for j := range ar[:n] {
					ar[j] -= corr
				}
			}
			k.requantRows(d, n, acc, ncp, rows, n, rq, 0)
			continue
		}
		if n8 > 0 {
			k.requantCorr(&d[0], n, &acc[0], ncp, rows, &rq.M0[0], &rq.Shift[0], n8, int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max), &acc[n], ncp)
		}
		if n8 < n {
			sub := Requant{M0: rq.M0[n8:], Shift: rq.Shift[n8:], ZeroPoint: rq.ZeroPoint, Min: rq.Min, Max: rq.Max}
			tmp := asc.off[:n-n8]
			for r := 0; r < rows; r++ {
				corr := 128 * acc[r*ncp+n]
				for j := n8; j < n; j++ {
					tmp[j-n8] = acc[r*ncp+j] - corr
				}
				requantRow(d[r*n+n8:r*n+n], tmp, &sub)
			}
		}
	}
	simdPool.Put(asc)
}

// int32Safe reports whether Min-ZeroPoint and Max-ZeroPoint fit in int32, the condition of the
// AVX-512 epilogue (always true for zero points in the int8 range).
func (rq *Requant) int32Safe() bool {
	lo, hi := int64(rq.Min)-int64(rq.ZeroPoint), int64(rq.Max)-int64(rq.ZeroPoint)
	return lo >= math.MinInt32 && hi <= math.MaxInt32 && lo <= math.MaxInt32 && hi >= math.MinInt32
}

func (k *simdKernels) depthwiseOrPortable() func(dst, src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, rq *Requant) {
	if k.dwRow16 == nil && k.dwRow8 == nil {
		return nil
	}
	return k.depthwise
}

// depthwise runs DepthwiseConv2DInt8 with the dwRow kernel on a zero-point-padded copy of each
// image: one call per output row for the channels in blocks of 16, the remaining channels in
// Go, then the vector epilogue on the row. Weights are widened to int16 once per call.
func (k *simdKernels) depthwise(dst, src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, rq *Requant) {
	c := s.InC
	c16 := c &^ 15
	if c16 == 0 {
		depthwise(dst, src, batch, s, inZero, w, bias, rq)
		return
	}
	oh, ow := s.OutH(), s.OutW()
	pw := s.InW + s.PadLeft + s.PadRight
	taps := s.KH * s.KW
	sc := simdPool.Get()
	defer simdPool.Put(sc)
	var w16 []int16
	if k.dwRow16 != nil {
		sc.a16 = growI16(sc.a16, taps*c)
		w16 = sc.a16
		for i, v := range w {
			w16[i] = int16(v)
		}
	}
	sc.off = growI32(sc.off, c)
	b := sc.off
	clear(b)
	if bias != nil {
		copy(b, bias)
	}
	sc.acc = growI32(sc.acc, ow*c)
	acc := sc.acc
	for n := 0; n < batch; n++ {
		pad, bp := paddedImage(src[n*s.InH*s.InW*c:(n+1)*s.InH*s.InW*c], s, inZero, 0)
		for oy := 0; oy < oh; oy++ {
			row := pad[oy*s.StrideH*pw*c:]
			if w16 != nil {
				k.dwRow16(&acc[0], &row[0], &w16[0], &b[0], c16, c, s.KH, s.KW, pw*c, s.StrideW*c, ow)
			} else {
				k.dwRow8(&acc[0], &row[0], &w[0], &b[0], c16, c, s.KH, s.KW, pw*c, s.StrideW*c, ow)
			}
			for ox := 0; ox < ow && c16 < c; ox++ {
				for ch := c16; ch < c; ch++ {
					t := b[ch]
					for kh := 0; kh < s.KH; kh++ {
						for kw := 0; kw < s.KW; kw++ {
							x := row[(kh*pw+ox*s.StrideW+kw)*c+ch]
							t += int32(x) * int32(w[(kh*s.KW+kw)*c+ch])
						}
					}
					acc[ox*c+ch] = t
				}
			}
			k.requantRows(dst[((n*oh+oy)*ow)*c:], c, acc, c, ow, c, rq, 0)
		}
		padPool.Put(bp)
	}
}
