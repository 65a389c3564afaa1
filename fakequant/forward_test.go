package fakequant

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// refForward is the scalar reference: quant.FakeQuantizeValue in the graph's float type with the
// parameters the quantizer reports, element by element via Layout.Slice.
func refForward(dt tensor.Dtype, x []float64, l Layout, ps []quant.Params, r quant.Range) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		p := ps[l.Slice(i)]
		if dt == tensor.Float32 {
			out[i] = float64(quant.FakeQuantizeValue(float32(v), p.Scale, p.ZeroPoint, r.Min, r.Max))
		} else {
			out[i] = quant.FakeQuantizeValue(v, float64(p.Scale), p.ZeroPoint, r.Min, r.Max)
		}
	}
	return out
}

type granCase struct {
	name  string
	shape []int
	gran  Granularity
	axis  int
	group int
}

var granCases = []granCase{
	{"tensor", []int{6, 10}, PerTensor, 0, 0},
	{"channel0", []int{6, 10}, PerChannel, 0, 0},
	{"channel-last", []int{6, 10}, PerChannel, -1, 0},
	{"channel-mid", []int{3, 4, 5}, PerChannel, 1, 0},
	{"group-last", []int{6, 12}, PerGroup, 1, 4},
	{"group-mid", []int{2, 6, 3}, PerGroup, 1, 3},
}

var dtypes = []tensor.Dtype{tensor.Float32, tensor.Float64}

// edgeInput makes data with ties at .5 of a power-of-two scale, clip points, zeros and random values.
func edgeInput(n int, s float64, r quant.Range, rng *rand.Rand) []float64 {
	x := make([]float64, n)
	for i := range x {
		switch i % 6 {
		case 0:
			x[i] = (float64(rng.IntN(int(r.Max-r.Min)+4)+int(r.Min)-2) + 0.5) * s // ties
		case 1:
			x[i] = float64([]int32{r.Min, r.Max}[rng.IntN(2)]) * s // clip points
		case 2:
			x[i] = 0
		case 3:
			x[i] = float64(r.Max)*s*(rng.Float64()*4-2) + 0 // beyond the range
		default:
			x[i] = (rng.Float64()*2 - 1) * float64(r.Max) * s
		}
	}
	return x
}

func TestForwardMatchesScalarReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range dtypes {
		for _, gc := range granCases {
			for _, m := range []Method{LSQ, Observed, PACT} {
				for _, scheme := range []Scheme{SymmetricNarrow, AsymmetricSigned, AsymmetricUnsigned} {
					for _, bits := range []int{2, 4, 8} {
						for _, scale := range []float64{0.25, 1.0 / 3, 1e-30, 1e30, 3e-7} {
							if m == PACT && scheme != AsymmetricUnsigned {
								continue
							}
							cfg := Config{Name: "fq", Bits: bits, Scheme: scheme, Granularity: gc.gran, Axis: gc.axis,
								GroupSize: gc.group, Method: m, LearnOffset: m == LSQ && scheme != SymmetricNarrow}
							n := 1
							for _, d := range gc.shape {
								n *= d
							}
							r := cfg.Range()
							x := edgeInput(n, scale, r, rng)
							if scale >= 1e30 && dt == tensor.Float32 {
								for i := range x { // keep float32 input finite
									x[i] = math.Max(-3e38, math.Min(3e38, x[i]))
								}
							}
							h := newHarness(t, dt, gc.shape, x, cfg, 7)
							k := h.q.Layout().Slices()
							ps := make([]quant.Params, k)
							for i := range ps {
								ps[i].Scale = float32(scale * (1 + 0.1*float64(i%3)))
								if ps[i].Scale < quant.MinScale {
									ps[i].Scale = quant.MinScale
								}
								if !cfg.Symmetric() {
									ps[i].ZeroPoint = r.Min + int32(i)%(r.Max-r.Min+1)
								}
							}
							if err := h.q.SetParams(ps); err != nil {
								t.Fatal(err)
							}
							h.run(t)
							got := floats(h.q.Out.Value())
							used, err := h.q.Params()
							if err != nil {
								t.Fatal(err)
							}
							for i := range used {
								tol := 1e-6 // LSQ float32 graphs store log(scale) in float32
								if dt == tensor.Float32 {
									tol = 1e-5
								}
								if math.Abs(float64(used[i].Scale)-float64(ps[i].Scale)) > tol*float64(ps[i].Scale) || used[i].ZeroPoint != ps[i].ZeroPoint {
									t.Fatalf("%v %s %v: params %d: set %+v used %+v", dt, gc.name, m, i, ps[i], used[i])
								}
							}
							want := refForward(dt, x, h.q.Layout(), used, r)
							for i := range want {
								if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
									t.Fatalf("%v %s %v %v b%d s%g: x[%d]=%v got %v want %v (params %+v)", dt, gc.name, m, scheme, bits, scale, i, x[i], got[i], want[i], used[h.q.Layout().Slice(i)])
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestForwardTiesAndClipsByHand(t *testing.T) {
	// 4-bit narrow symmetric, s = 0.5: levels -7..7, ties round away from zero.
	x := []float64{0.25, -0.25, 0.75, -0.75, 3.5, -3.5, 3.74, 3.76, 100, -100, 0, 1.25}
	want := []float64{0.5, -0.5, 1, -1, 3.5, -3.5, 3.5, 3.5, 3.5, -3.5, 0, 1.5}
	for _, dt := range dtypes {
		h := newHarness(t, dt, []int{len(x)}, x, Config{Name: "w", Bits: 4, InitScale: 0.5}, 1)
		h.run(t)
		got := floats(h.q.Out.Value())
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%v: x=%v got %v want %v", dt, x[i], got[i], want[i])
			}
		}
	}
}

func TestNonFiniteInputIsAnError(t *testing.T) {
	for _, dt := range dtypes {
		for _, m := range []Method{LSQ, Observed, PACT} {
			for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				x := []float64{1, 2, 3, bad, 5, 6}
				cfg := Config{Name: "act7", Bits: 8, Scheme: AsymmetricUnsigned, Method: m, InitScale: 0.1}
				h := newHarness(t, dt, []int{2, 3}, x, cfg, 1)
				err := h.vm.RunAll()
				h.vm.Reset()
				if err == nil {
					t.Fatalf("%v %v: no error for %v", dt, m, bad)
				}
				// The op's own error wraps ErrNonFinite (RunAll keeps only its text).
				vals := append([]G.Value{h.x.Value()}, h.q.paramValues()...)
				if _, derr := h.q.Out.Op().(*fqOp).Do(vals...); !errors.Is(derr, ErrNonFinite) || !errors.Is(derr, quant.ErrNonFinite) {
					t.Fatalf("%v %v: Do error does not wrap ErrNonFinite: %v", dt, m, derr)
				}
				if !strings.Contains(err.Error(), "act7") || !strings.Contains(err.Error(), "element 3") {
					t.Fatalf("%v %v: error does not name node and index: %v", dt, m, err)
				}
				if m == Observed {
					if _, _, err := h.q.ObserverRange(); !errors.Is(err, ErrNotCalibrated) {
						t.Fatalf("observer state changed by a NaN batch: %v", err)
					}
				}
			}
		}
	}
}

func TestObservedFusedEMA(t *testing.T) {
	for _, dt := range dtypes {
		shape := []int{4, 5}
		cfg := Config{Name: "a", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.5,
			Granularity: PerChannel, Axis: 1}
		rng := rand.New(rand.NewPCG(3, 3))
		batch := func() []float64 {
			x := make([]float64, 20)
			for i := range x {
				x[i] = rng.NormFloat64() * float64(1+i%5)
			}
			return x
		}
		x1 := batch()
		h := newHarness(t, dt, shape, x1, cfg, 1)
		ref := NewMinMaxObserver(h.q.Layout(), 0.5)
		for step := 0; step < 3; step++ {
			xv := batch()
			if step == 0 {
				xv = x1
			}
			if err := G.Let(h.x, denseOf(dt, shape, xv)); err != nil {
				t.Fatal(err)
			}
			h.run(t)
			// the reference observer sees the data as the graph's float type
			xs := floats(denseOf(dt, shape, xv))
			if err := ref.Observe(xs); err != nil {
				t.Fatal(err)
			}
			lo, hi, _ := ref.Range()
			glo, ghi, err := h.q.ObserverRange()
			if err != nil {
				t.Fatal(err)
			}
			for k := range lo {
				if lo[k] != glo[k] || hi[k] != ghi[k] {
					t.Fatalf("step %d slice %d: fused [%v,%v] reference [%v,%v]", step, k, glo[k], ghi[k], lo[k], hi[k])
				}
			}
			ps, _ := h.q.Params()
			for k := range lo {
				p, _ := quant.AsymmetricParams(lo[k], hi[k], quant.Signed(8))
				if p != ps[k] {
					t.Fatalf("params %+v want %+v", ps[k], p)
				}
			}
			want := refForward(dt, xs, h.q.Layout(), ps, quant.Signed(8))
			got := floats(h.q.Out.Value())
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("step %d: y[%d]=%v want %v", step, i, got[i], want[i])
				}
			}
		}
		// Frozen: the range stays.
		h.q.Freeze()
		lo0, _, _ := h.q.ObserverRange()
		if err := G.Let(h.x, denseOf(dt, shape, batch())); err != nil {
			t.Fatal(err)
		}
		h.run(t)
		lo1, _, _ := h.q.ObserverRange()
		for k := range lo0 {
			if lo0[k] != lo1[k] {
				t.Fatal("frozen observer moved")
			}
		}
		h.q.Unfreeze()
		h.run(t)
		lo2, _, _ := h.q.ObserverRange()
		same := true
		for k := range lo0 {
			same = same && lo0[k] == lo2[k]
		}
		if same {
			t.Fatal("unfrozen observer did not move")
		}
	}
}

func TestNonFiniteParameterIsAnError(t *testing.T) {
	for _, m := range []Method{LSQ, PACT} {
		cfg := Config{Name: "p9", Bits: 8, Scheme: AsymmetricUnsigned, Method: m, InitScale: 0.1}
		h := newHarness(t, tensor.Float32, []int{4}, []float64{1, 2, 3, 4}, cfg, 1)
		setFloats(h.q.Learnables()[0].Value(), []float64{math.NaN()})
		err := h.vm.RunAll()
		h.vm.Reset()
		if err == nil || !strings.Contains(err.Error(), "p9") || !strings.Contains(err.Error(), "NaN") {
			t.Fatalf("%v: NaN parameter: %v", m, err)
		}
		if _, err := h.q.Params(); !errors.Is(err, quant.ErrNonFinite) {
			t.Fatalf("%v: Params with NaN parameter: %v", m, err)
		}
	}
}

// TestSinglePassObserver: each batch is quantized with the parameters from the state before it, and
// the state after each batch equals a MinMaxObserver (EMA) that saw the same batches.
func TestSinglePassObserver(t *testing.T) {
	defer func(v int) { parallelMin = v }(parallelMin)
	for _, split := range []bool{false, true} {
		parallelMin = 1 << 30
		if split {
			parallelMin = 1
		}
		for _, dt := range dtypes {
			for _, gc := range granCases {
				shape := gc.shape
				cfg := Config{Name: "sp", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.3,
					SinglePass: true, Granularity: gc.gran, Axis: gc.axis, GroupSize: gc.group}
				rng := rand.New(rand.NewPCG(31, 32))
				n := 1
				for _, d := range shape {
					n *= d
				}
				batch := func() []float64 {
					x := make([]float64, n)
					for i := range x {
						x[i] = rng.NormFloat64() * 3
					}
					return x
				}
				h := newHarness(t, dt, shape, batch(), cfg, 1)
				ref := NewMinMaxObserver(h.q.Layout(), 0.3)
				var prev []quant.Params
				for step := 0; step < 4; step++ {
					xv := batch()
					if err := G.Let(h.x, denseOf(dt, shape, xv)); err != nil {
						t.Fatal(err)
					}
					h.run(t)
					xs := floats(denseOf(dt, shape, xv))
					if err := ref.Observe(xs); err != nil {
						t.Fatal(err)
					}
					used := prev
					ps, _ := h.q.Params()
					if step == 0 {
						used = ps // first batch: two passes, parameters from this batch
					}
					want := refForward(dt, xs, h.q.Layout(), used, quant.Signed(8))
					got := floats(h.q.Out.Value())
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("split=%t %v %s step %d: y[%d]=%v want %v", split, dt, gc.name, step, i, got[i], want[i])
						}
					}
					lo, hi, _ := ref.Range()
					glo, ghi, _ := h.q.ObserverRange()
					for k := range lo {
						if lo[k] != glo[k] || hi[k] != ghi[k] {
							t.Fatalf("step %d slice %d: state [%v,%v] want [%v,%v]", step, k, glo[k], ghi[k], lo[k], hi[k])
						}
					}
					prev = ps
				}
				if h.q.auxUsed != 4 {
					t.Fatalf("backward used the forward's codes %d of 4 steps", h.q.auxUsed)
				}
			}
		}
	}
}
