//go:build !purego

package kernels

// Assembly in gemvdec_amd64.s.

//go:noescape
func groupSums8AVX512(dst *int32, a *int8, groups, nb int)

//go:noescape
func requantEpAVX512(dst *int8, src *int32, n int, ep *int64, corr, zp, lo, hi int64)

// gemvDec is the decode form of a GEMV on the avx512vnni path: one call of the GEMV kernel on
// the whole layer, its input corrections computed by vector code (group sums for int4, the
// row sum for int8, which the epilogue adds instead of a per-call copy of the bias) and the
// epilogue from a table built at NewGEMV, with no per-call dispatch, task state or Go loop over
// the channels or the input. The integers are those of the plan path (GEMV.run): the sums
// wrap in int32 alike and the epilogue is requantAVX512's.
type gemvDec struct {
	p          *impl   // the path it runs on (avx512vnni)
	ep         []int64 // epTable of the epilogue, nil: RunInt32 only
	zp, lo, hi int64
}

// newGEMVDec returns the decode form of g, or nil where this CPU has no avx512vnni path or
// the layer does not fit its kernels.
func newGEMVDec(g *GEMV) *gemvDec {
	var p *impl
	for _, q := range impls {
		if q.name == "avx512vnni" {
			p = q
		}
	}
	switch {
	case p == nil:
		return nil
	case g.w4 != nil && (g.w4.panel == nil || g.w4.group%8 != 0):
		return nil
	case g.w8 != nil && (g.w8.panel == nil || g.k != g.w8.kp):
		return nil
	}
	d := &gemvDec{p: p}
	if rq := g.rq; rq != nil && g.n%8 == 0 && rq.int32Safe() {
		d.ep = make([]int64, g.np/8*24)
		epTable(d.ep, rq, 0, g.n, g.np)
		d.zp, d.lo, d.hi = int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max)
	}
	return d
}

// run computes the layer into dst8 (with the epilogue; d.ep != nil) or dst32 (len N), on the
// calling goroutine. a holds K values, scratch ScratchLen().
func (d *gemvDec) run(g *GEMV, dst8 []int8, dst32 []int32, a []int8, scratch []int32) {
	acc := scratch[g.np : 2*g.np]
	var corr int32
	if w := g.w4; w != nil {
		gc := scratch[2*g.np : 2*g.np+w.groups]
		nb := w.group / 8
		groupSums8AVX512(&gc[0], &a[0], w.groups, nb)
		vnniGemv4(&a[0], nb, w.groups, &w.panel[0], w.k*8, g.np/panelN, &w.pscales[0], &gc[0], &g.bias[0], &acc[0])
	} else {
		w := g.w8
		corr = avx512Kernels.rowOffset(a)
		avx512Kernels.gemv(&a[0], w.kp/4, &w.panel[0], w.kp*panelN, g.np/panelN, &g.bias[0], &acc[0])
	}
	if dst32 != nil {
		for j, v := range acc[:len(dst32)] {
			dst32[j] = v + corr
		}
		return
	}
	requantEpAVX512(&dst8[0], &acc[0], g.n, &d.ep[0], int64(corr), d.zp, d.lo, d.hi)
}
