package fakequant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// surrogate is the documented surrogate of the package doc with the rounding residual r0 held
// constant: LSQ/Observed x_hat = s*(clamp(x/s + r0 + z, qmin, qmax) - z), s = exp(theta);
// PACT y = clip(x, 0, alpha). cost = sum w .* x_hat.
type surrogate struct {
	l      Layout
	r      quant.Range
	method Method
	w, r0  []float64
}

func (sg *surrogate) cost(x, theta, z []float64) float64 {
	c := 0.0
	for i, xi := range x {
		k := sg.l.Slice(i)
		var y float64
		if sg.method == PACT {
			y = math.Max(0, math.Min(xi, theta[k]))
		} else {
			s := math.Exp(theta[k])
			y = s * (math.Max(float64(sg.r.Min), math.Min(float64(sg.r.Max), xi/s+sg.r0[i]+z[k])) - z[k])
		}
		c += sg.w[i] * y
	}
	return c
}

func closeTo(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= abs+rel*math.Abs(want)
}

func TestGradientsMatchSurrogate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type mcase struct {
		m      Method
		scheme Scheme
		offset bool
		grad   GradMode
	}
	mcases := []mcase{
		{LSQ, SymmetricNarrow, false, ClippedSTE},
		{LSQ, AsymmetricSigned, true, ClippedSTE},
		{LSQ, AsymmetricUnsigned, true, PlainSTE},
		{LSQ, AsymmetricSigned, false, ClippedSTE},
		{PACT, AsymmetricUnsigned, false, ClippedSTE},
		{Observed, AsymmetricSigned, false, ClippedSTE},
	}
	for _, dt := range dtypes {
		for _, gc := range granCases {
			for _, mc := range mcases {
				for _, bits := range []int{3, 8} {
					name := fmt.Sprintf("%v/%s/%v-%v-off%t-%v/b%d", dt, gc.name, mc.m, mc.scheme, mc.offset, mc.grad, bits)
					t.Run(name, func(t *testing.T) {
						cfg := Config{Name: "fq", Bits: bits, Scheme: mc.scheme, Granularity: gc.gran, Axis: gc.axis,
							GroupSize: gc.group, Method: mc.m, LearnOffset: mc.offset, Grad: mc.grad, InitScale: 1}
						checkGradients(t, rng, dt, gc.shape, cfg)
					})
				}
			}
		}
	}
}

func checkGradients(t *testing.T, rng *rand.Rand, dt tensor.Dtype, shape []int, cfg Config) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	l, err := NewLayout(shape, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Range()
	k := l.Slices()
	ps := make([]quant.Params, k)
	for i := range ps {
		ps[i].Scale = float32(0.1 * (1 + 0.3*float64(i%3)))
		if !cfg.Symmetric() && (cfg.LearnOffset || cfg.Method == Observed) {
			ps[i].ZeroPoint = r.Min + (r.Max-r.Min)/3 + int32(i%3)
		} else if !cfg.Symmetric() {
			ps[i].ZeroPoint = map[Scheme]int32{AsymmetricSigned: 0, AsymmetricUnsigned: r.Min}[cfg.Scheme]
		}
	}
	// Data: values across and beyond the range, kept away from the clip kinks.
	x := make([]float64, n)
	for i := range x {
		p := ps[l.Slice(i)]
		s := float64(p.Scale)
		lo, hi := float64(r.Min-p.ZeroPoint)-3, float64(r.Max-p.ZeroPoint)+3
		for {
			v := lo + rng.Float64()*(hi-lo)
			xv := v * s
			if dt == tensor.Float32 {
				xv = float64(float32(xv))
			}
			u := quant.Round(xv/s) + float64(p.ZeroPoint)
			if cfg.Method == PACT {
				alpha := float64(r.Max) * s
				if math.Abs(xv) < 1e-3 || math.Abs(xv-alpha) < 1e-3 {
					continue
				}
			} else if u == float64(r.Min) || u == float64(r.Max) {
				continue
			}
			x[i] = xv
			break
		}
	}
	h := newHarness(t, dt, shape, x, cfg, 11)
	if cfg.Method == Observed {
		h.q.Freeze()
	}
	if err := h.q.SetParams(ps); err != nil {
		t.Fatal(err)
	}
	h.run(t)
	used, err := h.q.Params()
	if err != nil {
		t.Fatal(err)
	}
	// Surrogate state at the evaluation point, from the node values the op used.
	w := floats(denseOf(dt, shape, h.w))
	xs := floats(denseOf(dt, shape, x))
	r0 := make([]float64, n)
	for i, xi := range xs {
		s := used[l.Slice(i)].Scale
		if dt == tensor.Float32 {
			v := float32(xi) / s
			r0[i] = float64(quant.Round(v)) - float64(v)
		} else {
			v := xi / float64(s)
			r0[i] = quant.Round(v) - v
		}
	}
	theta := make([]float64, k)
	z := make([]float64, k)
	switch cfg.Method {
	case LSQ:
		theta = floats(h.q.LogScale.Value())
		if h.q.Offset != nil {
			z = floats(h.q.Offset.Value())
		} else {
			for i := range z {
				z[i] = float64(used[i].ZeroPoint)
			}
		}
	case PACT:
		theta = floats(h.q.Alpha.Value())
	case Observed:
		for i := range theta {
			theta[i] = math.Log(float64(used[i].Scale))
			z[i] = float64(used[i].ZeroPoint)
		}
	}
	sg := &surrogate{l: l, r: r, method: cfg.Method, w: w, r0: r0}
	f := func() float64 { return sg.cost(xs, theta, z) }

	rel, abs := 1e-6, 1e-8 // abs: central-difference roundoff on a cost of O(n)
	if dt == tensor.Float32 {
		rel, abs = 2e-4, 1e-5
	}
	// input gradient
	gx := grad(t, h.x)
	nx := gradcheck.Numerical(xs, 1e-6, f)
	for i := range gx {
		want := nx[i]
		if cfg.Grad == PlainSTE {
			want = w[i]
		}
		if !closeTo(gx[i], want, 1e-5, 1e-6) {
			t.Fatalf("dx[%d] (x=%v) = %v, surrogate %v", i, xs[i], gx[i], want)
		}
	}
	if cfg.Method != PACT && h.q.auxUsed == 0 {
		t.Fatal("tape backward did not use the forward's aux codes")
	}
	checkAuxFallbackAgrees(t, h)
	gscale := 1.0
	if cfg.Method == LSQ {
		gscale = h.q.GradScale()
	}
	switch cfg.Method {
	case LSQ, PACT:
		var node = h.q.LogScale
		if cfg.Method == PACT {
			node = h.q.Alpha
		}
		gt := grad(t, node)
		nt := gradcheck.Numerical(theta, 1e-6, f)
		for i := range gt {
			if !closeTo(gt[i], gscale*nt[i], rel, abs*gscale) {
				t.Fatalf("d%s[%d] = %v, surrogate %v (g=%v)", node.Name(), i, gt[i], gscale*nt[i], gscale)
			}
		}
		if h.q.Offset != nil {
			gz := grad(t, h.q.Offset)
			nz := gradcheck.Numerical(z, 1e-6, f)
			for i := range gz {
				if !closeTo(gz[i], gscale*nz[i], rel, abs*gscale) {
					t.Fatalf("doffset[%d] = %v, surrogate %v", i, gz[i], gscale*nz[i])
				}
			}
		}
	}
}

// checkAuxFallbackAgrees runs the gradient op directly with and without the forward's aux codes
// and compares the input and parameter gradients.
func checkAuxFallbackAgrees(t *testing.T, h *harness) {
	t.Helper()
	fwd := h.q.Out.Op().(*fqOp)
	vals := append([]G.Value{h.x.Value()}, h.q.paramValues()...)
	gy := denseOf(h.dt, h.q.Layout().Shape, h.w)
	bvals := append(append([]G.Value{}, vals...), gy)
	if _, err := fwd.Do(vals...); err != nil {
		t.Fatal(err)
	}
	run := func(useAux bool) ([]float64, [][]float64) {
		if !useAux {
			h.q.auxOK = false
		}
		gop := &fqGradOp{q: h.q}
		out, err := gop.Do(bvals...)
		if err != nil {
			t.Fatal(err)
		}
		return floats(out), [][]float64{append([]float64(nil), gop.stash[0]...), append([]float64(nil), gop.stash[1]...)}
	}
	n0 := h.q.auxUsed
	gxA, pA := run(true)
	if h.q.Config().Method != PACT && h.q.auxUsed != n0+1 {
		t.Fatal("direct backward after forward did not use aux codes")
	}
	gxB, pB := run(false)
	for i := range gxA {
		if gxA[i] != gxB[i] {
			t.Fatalf("aux vs recompute: dx[%d] %v != %v", i, gxA[i], gxB[i])
		}
	}
	for j := range pA {
		for i := range pA[j] {
			if !closeTo(pA[j][i], pB[j][i], 1e-9, 1e-12) {
				t.Fatalf("aux vs recompute: param %d grad %d: %v != %v", j, i, pA[j][i], pB[j][i])
			}
		}
	}
}

// TestSplitPassMatchesSerial forces the two-goroutine split on small tensors and compares outputs,
// observer state and gradients with the single-goroutine pass.
func TestSplitPassMatchesSerial(t *testing.T) {
	defer func(v int) { parallelMin = v }(parallelMin)
	rng := rand.New(rand.NewPCG(21, 22))
	for _, dt := range dtypes {
		for _, gc := range granCases {
			for _, cfg := range []Config{
				{Name: "lsq", Bits: 4, Scheme: AsymmetricSigned, LearnOffset: true, InitScale: 0.3},
				{Name: "obs", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.5},
				{Name: "plain", Bits: 3, Grad: PlainSTE, InitScale: 0.2},
			} {
				cfg.Granularity, cfg.Axis, cfg.GroupSize = gc.gran, gc.axis, gc.group
				n := 1
				for _, d := range gc.shape {
					n *= d
				}
				x := make([]float64, n)
				for i := range x {
					x[i] = rng.NormFloat64()
				}
				type result struct{ y, gx, gp []float64 }
				runOnce := func(split bool) result {
					parallelMin = 1 << 30
					if split {
						parallelMin = 1
					}
					h := newHarness(t, dt, gc.shape, x, cfg, 5)
					h.run(t)
					h.run(t) // second step: EMA update and accumulated gradients
					r := result{y: floats(h.q.Out.Value()), gx: grad(t, h.x)}
					if ln := h.q.Learnables(); len(ln) > 0 {
						r.gp = grad(t, ln[0])
					}
					if cfg.Method == Observed {
						lo, hi, err := h.q.ObserverRange()
						if err != nil {
							t.Fatal(err)
						}
						r.gp = append(lo, hi...)
					}
					return r
				}
				a, b := runOnce(false), runOnce(true)
				for i := range a.y {
					if a.y[i] != b.y[i] || a.gx[i] != b.gx[i] {
						t.Fatalf("%v %s %s: element %d: serial (%v, %v) split (%v, %v)", dt, gc.name, cfg.Name, i, a.y[i], a.gx[i], b.y[i], b.gx[i])
					}
				}
				for i := range a.gp {
					if !closeTo(a.gp[i], b.gp[i], 1e-9, 1e-12) {
						t.Fatalf("%v %s %s: param %d: serial %v split %v", dt, gc.name, cfg.Name, i, a.gp[i], b.gp[i])
					}
				}
			}
		}
	}
}

// TestSplitPassWithoutWorker makes every hand-off fail (no worker can receive), so the caller
// cancels and runs the second span itself; results must equal the serial pass.
func TestSplitPassWithoutWorker(t *testing.T) {
	defer func(v int) { parallelMin = v }(parallelMin)
	startWorkers()
	saved := jobs
	defer func() { jobs = saved }()
	for _, cfg := range []Config{
		{Name: "lsq", Bits: 4, Scheme: AsymmetricSigned, LearnOffset: true, InitScale: 0.3, Granularity: PerChannel, Axis: 1},
		{Name: "obs", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.5},
	} {
		x := make([]float64, 96)
		for i := range x {
			x[i] = math.Sin(float64(i))
		}
		var res [2][]float64
		for pass, split := range []bool{false, true} {
			parallelMin, jobs = 1<<30, saved
			if split {
				parallelMin, jobs = 1, make(chan jobMsg) // unbuffered, nobody receives
			}
			h := newHarness(t, tensor.Float64, []int{8, 12}, x, cfg, 3)
			h.run(t)
			res[pass] = append(floats(h.q.Out.Value()), grad(t, h.x)...)
			if ln := h.q.Learnables(); len(ln) > 0 {
				res[pass] = append(res[pass], grad(t, ln[0])...)
			}
		}
		for i := range res[0] {
			if !closeTo(res[0][i], res[1][i], 1e-12, 1e-15) {
				t.Fatalf("%s: value %d: serial %v, cancelled split %v", cfg.Name, i, res[0][i], res[1][i])
			}
		}
	}
}
