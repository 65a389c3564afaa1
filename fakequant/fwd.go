package fakequant

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrNonFinite reports a NaN or Inf in the input of a fake-quantize node (wraps quant.ErrNonFinite).
var ErrNonFinite = fmt.Errorf("fakequant: %w input", quant.ErrNonFinite)

func (q *Quantizer) nonFiniteErr(x *tensor.Dense, i int) error {
	var v any
	switch d := x.Data().(type) {
	case []float32:
		v = d[i]
	case []float64:
		v = d[i]
	}
	return fmt.Errorf("%w: node %s: element %d is %v", ErrNonFinite, q.cfg.Name, i, v)
}

// rowsLayout reports whether the layout is per-channel on the last axis (one slice per column).
func (l Layout) rowsLayout() bool { return l.Inner == 1 && l.Block == 1 && !l.PerOuter && l.C > 1 }

// forward computes y = fake-quantize(x), first updating the observer (Observed, not frozen).
func (q *Quantizer) forward(x, y *tensor.Dense, pv []G.Value) error {
	if q.disabled {
		copyDense(y, x)
		return nil
	}
	if q.cfg.Method == Observed && !q.frozen && !q.fixed {
		var bad int
		switch xd := x.Data().(type) {
		case []float32:
			bad = observe(q, xd)
		case []float64:
			bad = observe(q, xd)
		}
		if bad >= 0 {
			return q.nonFiniteErr(x, bad)
		}
	}
	if err := q.computeParams(pv, true); err != nil {
		return err
	}
	var bad int
	switch xd := x.Data().(type) {
	case []float32:
		bad = fwdAll(q, xd, y.Data().([]float32), q.s32)
	case []float64:
		bad = fwdAll(q, xd, y.Data().([]float64), q.s64)
	}
	if bad >= 0 {
		return q.nonFiniteErr(x, bad)
	}
	return nil
}

func fwdAll[F quant.Float](q *Quantizer, x, y, s []F) int {
	l := q.layout
	r := q.rng
	if l.rowsLayout() {
		return fqRows(x, y, s, q.zps, r.Min, r.Max)
	}
	bad := -1
	l.forEachRun(func(start, end, stride, k int) {
		if bad < 0 {
			bad = fqRun(x, y, start, end, stride, s[k], q.zps[k], r.Min, r.Max)
		}
	})
	return bad
}

// observe updates the observer state from one batch; it returns the first non-finite index or -1
// (the state is left unchanged then).
func observe[F quant.Float](q *Quantizer, x []F) int {
	l := q.layout
	for i := range q.bLo {
		q.bLo[i], q.bHi[i] = math.Inf(1), math.Inf(-1)
	}
	bad := -1
	if l.rowsLayout() {
		c := l.C
		for r := 0; r+c <= len(x); r += c {
			for j, v := range x[r : r+c] {
				if nonFinite(v) {
					return r + j
				}
				f := float64(v)
				q.bLo[j] = min(q.bLo[j], f)
				q.bHi[j] = max(q.bHi[j], f)
			}
		}
	} else {
		l.forEachRun(func(start, end, stride, k int) {
			if bad >= 0 {
				return
			}
			lo, hi, b := minMaxRun(x, start, end, stride)
			if b >= 0 {
				bad = b
				return
			}
			q.bLo[k] = min(q.bLo[k], float64(lo))
			q.bHi[k] = max(q.bHi[k], float64(hi))
		})
		if bad >= 0 {
			return bad
		}
	}
	m := q.cfg.Momentum
	for k := range q.obsLo {
		switch {
		case !q.obsInit:
			q.obsLo[k], q.obsHi[k] = q.bLo[k], q.bHi[k]
		case m == 0:
			q.obsLo[k] = min(q.obsLo[k], q.bLo[k])
			q.obsHi[k] = max(q.obsHi[k], q.bHi[k])
		default:
			q.obsLo[k] += m * (q.bLo[k] - q.obsLo[k])
			q.obsHi[k] += m * (q.bHi[k] - q.obsHi[k])
		}
	}
	q.obsInit = true
	return -1
}

// backward computes gx from gy and writes the parameter gradients into p0 (log-scale or alpha) and
// p1 (offset).
func (q *Quantizer) backward(x, gy, gx *tensor.Dense, pv []G.Value, p0, p1 []float64) error {
	clear(p0)
	clear(p1)
	if q.disabled {
		copyDense(gx, gy)
		return nil
	}
	if err := q.computeParams(pv, false); err != nil {
		return err
	}
	clear(q.sumDS)
	clear(q.sumClip)
	clear(q.sumHigh)
	var bad int
	switch xd := x.Data().(type) {
	case []float32:
		bad = bwdAll(q, xd, gy.Data().([]float32), gx.Data().([]float32), q.s32)
	case []float64:
		bad = bwdAll(q, xd, gy.Data().([]float64), gx.Data().([]float64), q.s64)
	}
	if bad >= 0 {
		return q.nonFiniteErr(x, bad)
	}
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
	return nil
}

func bwdAll[F quant.Float](q *Quantizer, x, gy, gx, s []F) int {
	l := q.layout
	r := q.rng
	plain := q.cfg.Grad == PlainSTE
	if q.cfg.Method == PACT {
		bad := -1
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
		l.forEachRun(func(start, end, stride, k int) {
			if bad >= 0 {
				return
			}
			a := F(q.alphas[k])
			sum, b := pactBwdRun(x, gy, gx, start, end, stride, a, plain)
			bad = b
			q.sumHigh[k] += sum
		})
		return bad
	}
	if l.rowsLayout() {
		return bwdRows(x, gy, gx, s, q.zps, r.Min, r.Max, plain, q.sumDS, q.sumClip)
	}
	bad := -1
	l.forEachRun(func(start, end, stride, k int) {
		if bad >= 0 {
			return
		}
		sums, b := bwdRun(x, gy, gx, start, end, stride, s[k], q.zps[k], r.Min, r.Max, plain)
		bad = b
		q.sumDS[k] += sums.ds
		q.sumClip[k] += sums.clip
		q.sumHigh[k] += sums.high
	})
	return bad
}

func copyDense(dst, src *tensor.Dense) {
	switch d := dst.Data().(type) {
	case []float32:
		copy(d, src.Data().([]float32))
	case []float64:
		copy(d, src.Data().([]float64))
	}
}
