package fakequant

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/qatgo/qatgo/quant"
	"gorgonia.org/tensor"
)

// Large tensors are split in two element spans: the calling goroutine takes the first, a package
// worker goroutine the second. If the worker has not picked the second span up by the time the
// caller finishes the first (a busy machine), the caller cancels the hand-off and does it itself,
// so a starved worker never stalls a step. Each span's arithmetic is the same whoever runs it, so
// results are deterministic. Jobs are preallocated per Quantizer and handed over as small values,
// so a step allocates nothing. Layouts with strided runs (PerGroup on a non-last axis with inner
// axes) stay on one goroutine.

// parallelMin is the element count from which a pass is split (a pass over 64K float32 elements
// takes tens of microseconds, well above the cost of a hand-off).
var parallelMin = 1 << 16 // a variable so tests can force the split on small tensors

var (
	workerOnce sync.Once
	jobs       chan jobMsg
)

// jobMsg hands job j, armed as generation gen, to a worker.
type jobMsg struct {
	j   *job
	gen uint64
}

// Job states (low two bits of job.state; the generation is in the high bits).
const (
	jobPending   = 1
	jobRunning   = 2
	jobCancelled = 3
)

func startWorkers() {
	workerOnce.Do(func() {
		jobs = make(chan jobMsg, 16)
		for range max(runtime.GOMAXPROCS(0)-1, 1) {
			go func() {
				for m := range jobs {
					// Stale or cancelled hand-offs fail the CAS and are dropped.
					if m.j.state.CompareAndSwap(m.gen<<2|jobPending, m.gen<<2|jobRunning) {
						m.j.run()
						m.j.done <- struct{}{}
					}
				}
			}()
		}
	})
}

type jobKind int

const (
	jobForward jobKind = iota
	jobObserve
	jobBackward
	jobForwardObserve
)

// job is the second half of one pass.
type job struct {
	q            *Quantizer
	kind         jobKind
	a, b         int
	x, y, gy, gx *tensor.Dense
	bad          int
	part         partial
	done         chan struct{}
	gen          uint64
	state        atomic.Uint64
}

// partial holds per-slice sums (backward) or extrema (observe) of one span.
type partial struct{ ds, clip, high, lo, hi []float64 }

func newPartial(k int) partial {
	return partial{ds: make([]float64, k), clip: make([]float64, k), high: make([]float64, k),
		lo: make([]float64, k), hi: make([]float64, k)}
}

// fold widens slice k's observed range [lo[k], hi[k]] to include [mn, mx].
func (p *partial) fold(k int, mn, mx float64) {
	if mn < p.lo[k] {
		p.lo[k] = mn
	}
	if mx > p.hi[k] {
		p.hi[k] = mx
	}
}

func (p *partial) reset(observe bool) {
	if observe {
		for i := range p.lo {
			p.lo[i], p.hi[i] = math.Inf(1), math.Inf(-1)
		}
		return
	}
	clear(p.ds)
	clear(p.clip)
	clear(p.high)
}

func (j *job) run() {
	q := j.q
	f32 := q.dtype == tensor.Float32
	switch j.kind {
	case jobForward:
		if f32 {
			j.bad = fwdSpan(q, j.x.Float32s(), j.y.Float32s(), &q.p32, j.a, j.b)
		} else {
			j.bad = fwdSpan(q, j.x.Float64s(), j.y.Float64s(), &q.p64, j.a, j.b)
		}
	case jobObserve:
		if f32 {
			j.bad = observeSpan(q, j.x.Float32s(), j.a, j.b, &j.part)
		} else {
			j.bad = observeSpan(q, j.x.Float64s(), j.a, j.b, &j.part)
		}
	case jobForwardObserve:
		if f32 {
			j.bad = fwdObserveSpan(q, j.x.Float32s(), j.y.Float32s(), &q.p32, j.a, j.b, &j.part)
		} else {
			j.bad = fwdObserveSpan(q, j.x.Float64s(), j.y.Float64s(), &q.p64, j.a, j.b, &j.part)
		}
	case jobBackward:
		plain := q.cfg.Grad == PlainSTE
		if f32 {
			auxBwdSpan(q, j.gy.Float32s(), j.gx.Float32s(), &q.p32, j.a, j.b, plain, &j.part)
		} else {
			auxBwdSpan(q, j.gy.Float64s(), j.gx.Float64s(), &q.p64, j.a, j.b, plain, &j.part)
		}
		j.bad = -1
	}
}

// contiguousRuns reports whether every run is a contiguous block of Block*Inner elements.
func (l Layout) contiguousRuns() bool { return !l.PerInner || l.Inner == 1 }

// eachRun calls f(start, end, stride, k) for the runs of one slice k that make up elements
// [a, b) (contiguous layouts) or the whole tensor (strided layouts, whose passes are not split),
// and returns the first f result >= 0, or -1. Not for the rows layout.
func (l Layout) eachRun(a, b int, f func(start, end, stride, k int) int) int {
	if l.contiguousRuns() {
		run := l.Block * l.Inner
		for i := a; i < b; {
			ri := i / run
			end := min((ri+1)*run, b)
			if bad := f(i, end, 1, l.runSlice(ri)); bad >= 0 {
				return bad
			}
			i = end
		}
		return -1
	}
	for it := l.runs(); ; {
		start, end, stride, k, ok := it.next()
		if !ok {
			return -1
		}
		if bad := f(start, end, stride, k); bad >= 0 {
			return bad
		}
	}
}

// splitPoint returns where to split a pass over the tensor, or 0 for no split.
func (q *Quantizer) splitPoint() int {
	l := q.layout
	n := l.Len()
	if n < parallelMin || runtime.GOMAXPROCS(0) < 2 {
		return 0
	}
	if l.rowsLayout() {
		return (l.Outer / 2) * l.C
	}
	if !l.contiguousRuns() {
		return 0
	}
	return n / 2
}

// runPass runs kind over [0, n): with a split, [mid, n) goes to the worker via q.job.
// first runs the first span on the calling goroutine. It returns the smallest bad index or -1.
func (q *Quantizer) runPass(kind jobKind, x, y, gy, gx *tensor.Dense, first func(a, b int) int) int {
	n := q.layout.Len()
	mid := q.splitPoint()
	if mid <= 0 || mid >= n {
		return first(0, n)
	}
	startWorkers()
	j := &q.job
	if j.done == nil {
		j.q, j.done, j.part = q, make(chan struct{}, 1), newPartial(q.layout.Slices())
	}
	j.kind, j.a, j.b, j.x, j.y, j.gy, j.gx = kind, mid, n, x, y, gy, gx
	j.part.reset(kind == jobObserve || kind == jobForwardObserve)
	j.gen++
	j.state.Store(j.gen<<2 | jobPending)
	select {
	case jobs <- jobMsg{j, j.gen}:
	default: // queue full: the CAS below cancels and we run the span here
	}
	bad := first(0, mid)
	if j.state.CompareAndSwap(j.gen<<2|jobPending, j.gen<<2|jobCancelled) {
		j.run() // the worker never started it
	} else {
		<-j.done
	}
	j.x, j.y, j.gy, j.gx = nil, nil, nil, nil
	if bad >= 0 {
		return bad
	}
	if j.bad >= 0 {
		return j.bad
	}
	if kind == jobObserve || kind == jobForwardObserve {
		for k := range q.bLo {
			q.bLo[k] = min(q.bLo[k], j.part.lo[k])
			q.bHi[k] = max(q.bHi[k], j.part.hi[k])
		}
	}
	if kind == jobBackward {
		for k := range q.sumDS {
			q.sumDS[k] += j.part.ds[k]
			q.sumClip[k] += j.part.clip[k]
			q.sumHigh[k] += j.part.high[k]
		}
	}
	return -1
}

// runSlice is the slice of contiguous run number ri.
func (l Layout) runSlice(ri int) int {
	if l.PerOuter {
		return ri
	}
	return ri % (l.C / l.Block)
}

// fwdSpan fake-quantizes elements [a, b) (row-aligned for the rows layout; the whole tensor for
// strided layouts) and records the aux codes.
func fwdSpan[F quant.Float](q *Quantizer, x, y []F, p *typedParams[F], a, b int) int {
	l := q.layout
	r := q.rng
	if l.rowsLayout() {
		bad := fqRows(x[a:b], y[a:b], p.aux[a:b], p.s, p.lo, p.hi)
		if bad >= 0 {
			return a + bad
		}
		return -1
	}
	return l.eachRun(a, b, func(start, end, stride, k int) int {
		return fqRun(x, y, p.aux, start, end, stride, p.s[k], q.zps[k], r.Min, r.Max)
	})
}

// observeSpan folds the per-slice extrema of elements [a, b) into part.lo/hi.
func observeSpan[F quant.Float](q *Quantizer, x []F, a, b int, part *partial) int {
	l := q.layout
	if l.rowsLayout() {
		c := l.C
		lo, hi := part.lo[:c], part.hi[:c]
		for r := a; r+c <= b; r += c {
			for j, v := range x[r : r+c] {
				if nonFinite(v) {
					return r + j
				}
				f := float64(v)
				if f < lo[j] {
					lo[j] = f
				}
				if f > hi[j] {
					hi[j] = f
				}
			}
		}
		return -1
	}
	return l.eachRun(a, b, func(start, end, stride, k int) int {
		mn, mx, bad := minMaxRun(x, start, end, stride)
		if bad < 0 {
			part.fold(k, float64(mn), float64(mx))
		}
		return bad
	})
}

// auxBwdSpan is the backward of elements [a, b) from the aux codes; sums go to part.
func auxBwdSpan[F quant.Float](q *Quantizer, gy, gx []F, p *typedParams[F], a, b int, plain bool, part *partial) {
	l := q.layout
	if l.rowsLayout() {
		auxBwdRows(p.aux[a:b], gy[a:b], gx[a:b], p.lo, p.hi, plain, part.ds, part.clip)
		return
	}
	l.eachRun(a, b, func(start, end, stride, k int) int {
		s := auxBwdRun(p.aux, gy, gx, start, end, stride, p.lo[k], p.hi[k], plain)
		part.ds[k] += s.ds
		part.clip[k] += s.clip
		part.high[k] += s.high
		return -1
	})
}

// fwdObserveSpan is fwdSpan that also folds the per-slice extrema of [a, b) into part.lo/hi.
func fwdObserveSpan[F quant.Float](q *Quantizer, x, y []F, p *typedParams[F], a, b int, part *partial) int {
	l := q.layout
	r := q.rng
	if l.rowsLayout() {
		if bad := observeSpan(q, x, a, b, part); bad >= 0 {
			return bad
		}
		if bad := fqRows(x[a:b], y[a:b], p.aux[a:b], p.s, p.lo, p.hi); bad >= 0 {
			return a + bad
		}
		return -1
	}
	return l.eachRun(a, b, func(start, end, stride, k int) int {
		mn, mx, bad := fqRunMinMax(x, y, p.aux, start, end, stride, p.s[k], q.zps[k], r.Min, r.Max)
		if bad < 0 {
			part.fold(k, float64(mn), float64(mx))
		}
		return bad
	})
}
