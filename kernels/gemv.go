package kernels

import (
	"errors"
	"fmt"

	"github.com/qatgo/qatgo/quant"
)

// GEMV is one linear layer prepared for batch-1 calls (the decode step of a language model):
// packed int8 or int4 weights, bias and epilogue checked once, by NewGEMVInt8 / NewGEMVInt4,
// instead of on every call as GEMMInt8 and GEMMInt4 do; a call runs the path's GEMV kernel on
// caller-provided scratch, so it takes no lock and allocates nothing, and it can split the
// output channels over threads. Results are bit-identical to GEMMInt8 / GEMMInt4 with m = 1 on
// every path. A GEMV is immutable and safe for concurrent use (each call with its own scratch).
type GEMV struct {
	n, k, np int
	w8       *PackedInt8
	w4       *PackedInt4
	bias     []int32 // N, zero-padded to whole tiles
	rq       *Requant
	dec      *gemvDec // the decode form on the avx512vnni path (gemvdec_amd64.go), nil: none
}

// NewGEMVInt8 prepares y = epilogue(w·a + bias) for int8 weights. bias may be nil (zeros); rq
// may be nil for int32 outputs (RunInt32). It returns an error for a nil w, a bias of the wrong
// length or an invalid epilogue (see Requant).
func NewGEMVInt8(w *PackedInt8, bias []int32, rq *Requant) (*GEMV, error) {
	if w == nil {
		return nil, errors.New("kernels: NewGEMVInt8: nil weights")
	}
	return newGEMV(&GEMV{n: w.n, k: w.k, w8: w}, bias, rq)
}

// NewGEMVInt4 is NewGEMVInt8 for int4 weights (the PackedInt4 integer contract).
func NewGEMVInt4(w *PackedInt4, bias []int32, rq *Requant) (*GEMV, error) {
	if w == nil {
		return nil, errors.New("kernels: NewGEMVInt4: nil weights")
	}
	return newGEMV(&GEMV{n: w.n, k: w.k, w4: w}, bias, rq)
}

func newGEMV(g *GEMV, bias []int32, rq *Requant) (*GEMV, error) {
	if bias != nil && len(bias) != g.n {
		return nil, fmt.Errorf("kernels: GEMV: len(bias) = %d, want N = %d", len(bias), g.n)
	}
	if rq != nil {
		if err := rq.validate(g.n); err != nil {
			return nil, fmt.Errorf("kernels: GEMV: %w", err)
		}
		c := *rq
		g.rq = &c
	}
	g.np = (g.n + panelN - 1) / panelN * panelN
	g.bias = make([]int32, g.np)
	copy(g.bias, bias)
	g.dec = newGEMVDec(g)
	return g, nil
}

// validate is check returning an error.
func (rq *Requant) validate(n int) error {
	if len(rq.M0) != n || len(rq.Shift) != n {
		return fmt.Errorf("len(M0) = %d, len(Shift) = %d, want N = %d", len(rq.M0), len(rq.Shift), n)
	}
	if rq.Min > rq.Max || rq.Min < -128 || rq.Max > 127 {
		return fmt.Errorf("clamp bounds [%d,%d] not inside [-128,127]", rq.Min, rq.Max)
	}
	for c := range rq.M0 {
		if !(quant.Multiplier{M0: rq.M0[c], Shift: rq.Shift[c]}).Valid() {
			return fmt.Errorf("invalid multiplier (M0=%d, Shift=%d) for channel %d", rq.M0[c], rq.Shift[c], c)
		}
	}
	return nil
}

// N returns the number of outputs.
func (g *GEMV) N() int { return g.n }

// K returns the input length.
func (g *GEMV) K() int { return g.k }

// ScratchLen returns the int32 scratch length Run and RunInt32 need.
func (g *GEMV) ScratchLen() int {
	n := 2 * g.np
	if g.w4 != nil {
		n += g.w4.groups
	}
	return n
}

// gemvMinParallel is the work (multiply-adds) from which Run splits the channels over threads.
var gemvMinParallel = 1 << 16

// Run computes dst[j] = epilogue(sum_k a[k]*w[j][k] + bias[j]) for j < N, using up to threads
// goroutines (<= 1: the caller's only; a layer below 2^16 multiply-adds, or with one tile of
// channels, always runs on the caller's). It panics if the GEMV has no epilogue or a slice is
// too short (len(a) >= K, len(dst) >= N, len(scratch) >= ScratchLen()).
func (g *GEMV) Run(dst, a []int8, scratch []int32, threads int) {
	if g.rq == nil {
		panic("kernels: GEMV.Run without an epilogue: use RunInt32")
	}
	if len(dst) < g.n {
		panic(fmt.Sprintf("kernels: GEMV.Run: len(dst) = %d < N = %d", len(dst), g.n))
	}
	g.run(dst[:g.n], nil, a, scratch, threads)
}

// RunInt32 is Run without the epilogue: dst[j] = sum_k a[k]*w[j][k] + bias[j].
func (g *GEMV) RunInt32(dst []int32, a []int8, scratch []int32, threads int) {
	if len(dst) < g.n {
		panic(fmt.Sprintf("kernels: GEMV.RunInt32: len(dst) = %d < N = %d", len(dst), g.n))
	}
	g.run(nil, dst[:g.n], a, scratch, threads)
}

// gemvTask is one call's state, shared by its column chunks.
type gemvTask struct {
	g           *GEMV
	p           *impl
	dst8        []int8
	dst32       []int32
	a           []int8
	off, acc, c []int32
	chunk       int
	plan        bool // the path's GEMV plan kernels (else its general gemm32 / gemv4)
}

var gemvTaskPool = freeList[gemvTask]{}

func (g *GEMV) run(dst8 []int8, dst32 []int32, a []int8, scratch []int32, threads int) {
	if len(a) < g.k {
		panic(fmt.Sprintf("kernels: GEMV: len(a) = %d < K = %d", len(a), g.k))
	}
	if len(scratch) < g.ScratchLen() {
		panic(fmt.Sprintf("kernels: GEMV: len(scratch) = %d < %d", len(scratch), g.ScratchLen()))
	}
	a = a[:g.k]
	if lim := int(maxThreads.Load()); lim > 0 {
		threads = min(threads, lim)
	}
	if d := g.dec; d != nil && (threads <= 1 || g.np == panelN || g.n*g.k < gemvMinParallel) &&
		current.Load() == d.p && (dst8 == nil || d.ep != nil) {
		d.run(g, dst8, dst32, a, scratch)
		return
	}
	t := gemvTask{g: g, p: current.Load(), dst8: dst8, dst32: dst32, a: a,
		off: scratch[:g.np], acc: scratch[g.np : 2*g.np], c: scratch[2*g.np : g.ScratchLen()], chunk: g.np}
	p := t.p
	switch {
	case g.w8 != nil && p.gemv8 != nil && g.k == g.w8.kp:
		t.plan = true
		corr := p.rowCorr(a)
		for j, b := range g.bias {
			t.off[j] = b + corr
		}
	case g.w4 != nil && p.gemv4Plan != nil && g.w4.panel != nil:
		t.plan = true
		copy(t.off, g.bias)
		gs := g.w4.group
		for i := range t.c {
			var s int32
			for _, v := range a[i*gs : (i+1)*gs] {
				s += int32(v)
			}
			t.c[i] = 8 * s
		}
	}
	tiles := g.np / panelN
	if threads > 1 && tiles > 1 && g.n*g.k >= gemvMinParallel {
		nc := min(threads, tiles)
		t.chunk = (tiles + nc - 1) / nc * panelN
		pt := gemvTaskPool.Get()
		*pt = t
		parallelFor((g.np+t.chunk-1)/t.chunk, pt)
		*pt = gemvTask{}
		gemvTaskPool.Put(pt)
		return
	}
	t.runTask(0)
}

// runTask computes the channels [i*chunk, (i+1)*chunk).
func (t *gemvTask) runTask(i int) {
	g := t.g
	j0, j1 := i*t.chunk, min((i+1)*t.chunk, g.n)
	if j0 >= j1 {
		return
	}
	acc := t.acc
	switch {
	case !t.plan && g.w8 != nil:
		t.p.gemm32(acc[j0:], g.n, t.a, g.k, 1, g.w8, g.bias, j0, j1)
	case !t.plan:
		t.p.gemv4(acc, t.a, g.w4, g.bias, j0, j1)
	case g.w8 != nil:
		t.p.gemv8(acc, t.a, g.w8, t.off, j0, j1)
	default:
		t.p.gemv4Plan(acc, t.a, g.w4, t.off, t.c, j0, j1)
	}
	if t.dst32 != nil {
		copy(t.dst32[j0:j1], acc[j0:j1])
		return
	}
	if t.p.requantCols != nil {
		t.p.requantCols(t.dst8, acc, g.rq, j0, j1)
		return
	}
	rq := g.rq
	sub := Requant{M0: rq.M0[j0:j1], Shift: rq.Shift[j0:j1], ZeroPoint: rq.ZeroPoint, Min: rq.Min, Max: rq.Max}
	requantRow(t.dst8[j0:j1], acc[j0:j1], &sub)
}
