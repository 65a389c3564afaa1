package fakequant

import (
	"fmt"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrNonFinite reports a NaN or Inf in the input of a fake-quantize node (wraps quant.ErrNonFinite).
var ErrNonFinite = fmt.Errorf("fakequant: %w", quant.ErrNonFinite)

func (q *Quantizer) nonFiniteErr(x *tensor.Dense, i int) error {
	var v any
	if x.Dtype() == tensor.Float32 {
		v = x.Float32s()[i]
	} else {
		v = x.Float64s()[i]
	}
	return fmt.Errorf("%w: node %s: input element %d is %v", ErrNonFinite, q.cfg.Name, i, v)
}

// rowsLayout reports whether the layout is per-channel on the last axis (one slice per column).
func (l Layout) rowsLayout() bool { return l.Inner == 1 && l.Block == 1 && !l.PerOuter && l.C > 1 }

// forward computes y = fake-quantize(x), first updating the observer (Observed, not frozen).
func (q *Quantizer) forward(x, y *tensor.Dense, pv []G.Value) error {
	st := q.st
	if st.disabled {
		copyDense(y, x)
		return nil
	}
	observing := q.cfg.Method == Observed && !st.frozen && !st.fixed && !q.eval
	lagged := observing && q.cfg.SinglePass && st.init
	if observing && !lagged {
		if bad := q.observe(x); bad >= 0 {
			return q.nonFiniteErr(x, bad)
		}
	}
	if err := q.computeParams(pv); err != nil {
		return err
	}
	q.auxOK = false
	kind := jobForward
	main := partial{lo: q.bLo, hi: q.bHi}
	if lagged {
		kind = jobForwardObserve
		main.reset(true)
	}
	var bad int
	if x.Dtype() == tensor.Float32 {
		xs, ys := x.Float32s(), y.Float32s()
		if len(q.p32.aux) != len(xs) {
			q.p32.aux = make([]float32, len(xs))
		}
		bad = q.runPass(kind, x, y, nil, nil, func(a, b int) int {
			if lagged {
				return fwdObserveSpan(q, xs, ys, &q.p32, a, b, &main)
			}
			return fwdSpan(q, xs, ys, &q.p32, a, b)
		})
	} else {
		xs, ys := x.Float64s(), y.Float64s()
		if len(q.p64.aux) != len(xs) {
			q.p64.aux = make([]float64, len(xs))
		}
		bad = q.runPass(kind, x, y, nil, nil, func(a, b int) int {
			if lagged {
				return fwdObserveSpan(q, xs, ys, &q.p64, a, b, &main)
			}
			return fwdSpan(q, xs, ys, &q.p64, a, b)
		})
	}
	if bad >= 0 {
		return q.nonFiniteErr(x, bad)
	}
	if lagged {
		q.foldBatch()
	}
	// The aux codes stay valid for the backward of this x with these parameters.
	q.auxOK, q.auxX, q.auxPtr = true, x, x.Uintptr()
	copy(q.fwdScales, q.scales)
	copy(q.fwdZps, q.zps)
	return nil
}

// auxValid reports whether the forward's aux codes belong to input x and the current parameters.
func (q *Quantizer) auxValid(x *tensor.Dense) bool {
	if !q.auxOK || q.auxX != x || q.auxPtr != x.Uintptr() {
		return false
	}
	for i := range q.scales {
		if q.scales[i] != q.fwdScales[i] || q.zps[i] != q.fwdZps[i] {
			return false
		}
	}
	return true
}

// observe updates the observer state from one batch; it returns the first non-finite index or -1
// (the state is left unchanged then).
func (q *Quantizer) observe(x *tensor.Dense) int {
	main := partial{lo: q.bLo, hi: q.bHi}
	main.reset(true)
	var bad int
	if x.Dtype() == tensor.Float32 {
		xs := x.Float32s()
		bad = q.runPass(jobObserve, x, nil, nil, nil, func(a, b int) int { return observeSpan(q, xs, a, b, &main) })
	} else {
		xs := x.Float64s()
		bad = q.runPass(jobObserve, x, nil, nil, nil, func(a, b int) int { return observeSpan(q, xs, a, b, &main) })
	}
	if bad >= 0 {
		return bad
	}
	q.foldBatch()
	return -1
}

// foldBatch merges the batch extrema bLo/bHi into the observer state.
func (q *Quantizer) foldBatch() { q.st.fold(q.cfg.Momentum, q.bLo, q.bHi) }

// backward computes gx from gy and writes the parameter gradients into p0 (log-scale or alpha) and
// p1 (offset).
func (q *Quantizer) backward(x, gy, gx *tensor.Dense, pv []G.Value, p0, p1 []float64) error {
	clear(p0)
	clear(p1)
	if q.st.disabled {
		copyDense(gx, gy)
		return nil
	}
	if q.cfg.Method == Observed && q.auxOK && q.auxX == x && q.auxPtr == x.Uintptr() {
		// The parameters the forward used (with SinglePass the observer moved on after quantizing).
		copy(q.scales, q.fwdScales)
		copy(q.zps, q.fwdZps)
		q.setTyped()
	} else if err := q.computeParams(pv); err != nil {
		return err
	}
	clear(q.sumDS)
	clear(q.sumClip)
	clear(q.sumHigh)
	useAux := q.cfg.Method != PACT && q.auxValid(x)
	if useAux {
		q.auxUsed++
		main := partial{ds: q.sumDS, clip: q.sumClip, high: q.sumHigh}
		plain := q.cfg.Grad == PlainSTE
		if x.Dtype() == tensor.Float32 {
			gys, gxs := gy.Float32s(), gx.Float32s()
			q.runPass(jobBackward, x, nil, gy, gx, func(a, b int) int { auxBwdSpan(q, gys, gxs, &q.p32, a, b, plain, &main); return -1 })
		} else {
			gys, gxs := gy.Float64s(), gx.Float64s()
			q.runPass(jobBackward, x, nil, gy, gx, func(a, b int) int { auxBwdSpan(q, gys, gxs, &q.p64, a, b, plain, &main); return -1 })
		}
		q.paramGrads(p0, p1)
		return nil
	}
	var bad int
	if x.Dtype() == tensor.Float32 {
		bad = bwdAll(q, x.Float32s(), gy.Float32s(), gx.Float32s(), &q.p32)
	} else {
		bad = bwdAll(q, x.Float64s(), gy.Float64s(), gx.Float64s(), &q.p64)
	}
	if bad >= 0 {
		return q.nonFiniteErr(x, bad)
	}
	q.paramGrads(p0, p1)
	return nil
}

// paramGrads turns the per-slice sums into the parameter gradients.
func (q *Quantizer) paramGrads(p0, p1 []float64) {
	switch q.cfg.Method {
	case LSQ:
		g := q.GradScale()
		for k, s := range q.scales {
			p0[k] = float64(s) * g * q.sumDS[k]
		}
		if q.cfg.LearnOffset {
			for k, s := range q.scales {
				p1[k] = -float64(s) * g * q.sumClip[k]
			}
		}
	case PACT:
		copy(p0, q.sumHigh)
	}
}

func bwdAll[F quant.Float](q *Quantizer, x, gy, gx []F, p *typedParams[F]) int {
	l := q.layout
	r := q.rng
	plain := q.cfg.Grad == PlainSTE
	if q.cfg.Method == PACT {
		if l.rowsLayout() {
			c := l.C
			for i, xi := range x {
				if nonFinite(xi) {
					return i
				}
				k := i % c
				a := F(q.alphas[k])
				g := gy[i]
				if xi >= a {
					q.sumHigh[k] += float64(g)
					if !plain {
						g = 0
					}
				} else if xi < 0 && !plain {
					g = 0
				}
				gx[i] = g
			}
			return -1
		}
		for it := l.runs(); ; {
			start, end, stride, k, ok := it.next()
			if !ok {
				return -1
			}
			sum, b := pactBwdRun(x, gy, gx, start, end, stride, F(q.alphas[k]), plain)
			if b >= 0 {
				return b
			}
			q.sumHigh[k] += sum
		}
	}
	if l.rowsLayout() {
		return bwdRows(x, gy, gx, p.s, p.lo, p.hi, plain, q.sumDS, q.sumClip)
	}
	for it := l.runs(); ; {
		start, end, stride, k, ok := it.next()
		if !ok {
			return -1
		}
		sums, b := bwdRun(x, gy, gx, start, end, stride, p.s[k], q.zps[k], r.Min, r.Max, plain)
		if b >= 0 {
			return b
		}
		q.sumDS[k] += sums.ds
		q.sumClip[k] += sums.clip
		q.sumHigh[k] += sums.high
	}
}

func copyDense(dst, src *tensor.Dense) {
	if dst.Dtype() == tensor.Float32 {
		copy(dst.Float32s(), src.Float32s())
	} else {
		copy(dst.Float64s(), src.Float64s())
	}
}

// typedParams are the forward parameters of every slice in the graph's float type:
// scale s, lo = qmin-z and hi = qmax-z.
type typedParams[F quant.Float] struct {
	s, lo, hi []F
	aux       []F // per element: rounding residual or clip code from the last forward
}

func (p *typedParams[F]) set(scales []float32, zps []int32, r quant.Range) {
	if len(p.s) != len(scales) {
		p.s, p.lo, p.hi = make([]F, len(scales)), make([]F, len(scales)), make([]F, len(scales))
	}
	for i, s := range scales {
		p.s[i], p.lo[i], p.hi[i] = F(s), F(r.Min-zps[i]), F(r.Max-zps[i])
	}
}
