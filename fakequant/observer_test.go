package fakequant

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestLayoutSlices(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		cfg   Config
		k     int
		// hand-computed slice of a few flat indices
		idx, want []int
	}{
		{[]int{4, 6}, Config{Granularity: PerTensor}, 1, []int{0, 23}, []int{0, 0}},
		{[]int{4, 6}, Config{Granularity: PerChannel, Axis: 0}, 4, []int{0, 5, 6, 23}, []int{0, 0, 1, 3}},
		{[]int{4, 6}, Config{Granularity: PerChannel, Axis: 1}, 6, []int{0, 5, 6, 23}, []int{0, 5, 0, 5}},
		{[]int{4, 6}, Config{Granularity: PerGroup, Axis: 1, GroupSize: 3}, 8, []int{0, 2, 3, 6, 23}, []int{0, 0, 1, 2, 7}},
		{[]int{6, 2}, Config{Granularity: PerGroup, Axis: 0, GroupSize: 3}, 4, []int{0, 1, 2, 4, 6, 11}, []int{0, 1, 0, 0, 2, 3}},
		{[]int{2, 3, 4}, Config{Granularity: PerChannel, Axis: -2}, 3, []int{0, 4, 8, 12, 23}, []int{0, 1, 2, 0, 2}},
	} {
		l, err := NewLayout(tc.shape, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if l.Slices() != tc.k {
			t.Fatalf("%v %+v: K=%d want %d", tc.shape, tc.cfg, l.Slices(), tc.k)
		}
		for i, ix := range tc.idx {
			if got := l.Slice(ix); got != tc.want[i] {
				t.Fatalf("%v %v: Slice(%d)=%d want %d", tc.shape, tc.cfg.Granularity, ix, got, tc.want[i])
			}
		}
		// runs cover every element once, with the slice Slice reports
		seen := make([]int, l.Len())
		for it := l.runs(); ; {
			s, e, st, k, ok := it.next()
			if !ok {
				break
			}
			for i := s; i < e; i += st {
				seen[i]++
				if l.Slice(i) != k {
					t.Fatalf("run slice %d != Slice(%d)=%d", k, i, l.Slice(i))
				}
			}
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("element %d covered %d times", i, c)
			}
		}
	}
	if _, err := NewLayout([]int{4, 6}, Config{Granularity: PerGroup, Axis: 1, GroupSize: 4}); err == nil {
		t.Fatal("group size not dividing the axis accepted")
	}
	if _, err := NewLayout([]int{4, 6}, Config{Granularity: PerChannel, Axis: 2}); err == nil {
		t.Fatal("axis out of range accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "a", Bits: 8}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{
		{Bits: 8},
		{Name: "a", Bits: 1},
		{Name: "a", Bits: 9},
		{Name: "a", Bits: 8, Granularity: PerGroup},
		{Name: "a", Bits: 8, LearnOffset: true},                                         // symmetric
		{Name: "a", Bits: 8, Scheme: AsymmetricSigned, Method: PACT, LearnOffset: true}, // not LSQ
		{Name: "a", Bits: 8, Momentum: 1.5},
		{Name: "a", Bits: 8, Momentum: math.NaN()},
		{Name: "a", Bits: 8, InitScale: -1},
		{Name: "a", Bits: 8, Method: Method(7)},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v", bad, err)
		}
	}
	for _, tc := range []struct {
		cfg Config
		r   quant.Range
		qp  int
	}{
		{Config{Bits: 4}, quant.Range{Min: -7, Max: 7}, 7},
		{Config{Bits: 8, Scheme: AsymmetricSigned}, quant.Range{Min: -128, Max: 127}, 255},
		{Config{Bits: 8, Scheme: AsymmetricUnsigned}, quant.Range{Min: 0, Max: 255}, 255},
		{Config{Bits: 4, Method: PACT}, quant.Range{Min: 0, Max: 15}, 15},
	} {
		if tc.cfg.Range() != tc.r || tc.cfg.Qp() != tc.qp {
			t.Errorf("%+v: range %v Qp %d", tc.cfg, tc.cfg.Range(), tc.cfg.Qp())
		}
	}
}

func TestLSQInitScale(t *testing.T) {
	l, _ := NewLayout([]int{2, 4}, Config{Granularity: PerChannel, Axis: 0})
	s, err := LSQInitScale([]float64{1, -1, 2, -2, 0, 0, 0, 0}, l, 4)
	if err != nil {
		t.Fatal(err)
	}
	// slice 0: mean|v| = 1.5 -> 2*1.5/2 = 1.5; slice 1: all zero -> MinScale
	if s[0] != 1.5 || s[1] != quant.MinScale {
		t.Fatalf("got %v", s)
	}
	if _, err := LSQInitScale([]float64{1, math.NaN(), 0, 0, 0, 0, 0, 0}, l, 4); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("NaN: %v", err)
	}
}

func TestMinMaxObserver(t *testing.T) {
	l, _ := NewLayout([]int{4}, Config{})
	o := NewMinMaxObserver(l, 0)
	if _, _, err := o.Range(); !errors.Is(err, ErrNotCalibrated) {
		t.Fatal(err)
	}
	_ = o.Observe([]float64{1, 2, 3, 4})
	_ = o.Observe([]float64{-1, 0, 0, 0})
	lo, hi, _ := o.Range()
	if lo[0] != -1 || hi[0] != 4 {
		t.Fatalf("running min/max [%v %v]", lo, hi)
	}
	o.Freeze()
	_ = o.Observe([]float64{-9, 9, 0, 0})
	if lo, hi, _ := o.Range(); lo[0] != -1 || hi[0] != 4 {
		t.Fatal("frozen observer moved")
	}
	o.Unfreeze()
	e := NewMinMaxObserver(l, 0.25)
	_ = e.Observe([]float64{0, 0, 0, 4})
	_ = e.Observe([]float64{-4, 0, 0, 8})
	lo, hi, _ = e.Range()
	if lo[0] != -1 || hi[0] != 5 { // 0 + 0.25*(-4-0), 4 + 0.25*(8-4)
		t.Fatalf("EMA [%v %v]", lo, hi)
	}
	if err := e.Observe([]float64{0, math.Inf(1), 0, 0}); !errors.Is(err, ErrNonFinite) {
		t.Fatal("Inf accepted")
	}
}

func TestPercentileObserver(t *testing.T) {
	l, _ := NewLayout([]int{1001}, Config{})
	o, err := NewPercentileObserver(l, 99, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, 1001)
	for i := range v {
		v[i] = float64(i) - 500 // -500..500
	}
	v[1000] = 1e6 // outlier
	if err := o.Observe(v); err != nil {
		t.Fatal(err)
	}
	lo, hi, _ := o.Range()
	// sorted: -500..499, 1e6; 1% position 10 -> -490; 99% position 990 -> 490
	if lo[0] != -490 || hi[0] != 490 {
		t.Fatalf("percentile range [%v %v]", lo[0], hi[0])
	}
	if _, err := NewPercentileObserver(l, 40, 0); err == nil {
		t.Fatal("P=40 accepted")
	}
}

func TestMSEObserverBeatsMinMaxWithOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	cfg := Config{Name: "a", Bits: 4}
	l, _ := NewLayout([]int{4000}, cfg)
	v := make([]float64, 4000)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	v[0] = 40 // one outlier ruins min/max for 4-bit
	o, err := NewMSEObserver(l, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = o.Observe(v)
	lo, hi, _ := o.Range()
	mse := func(lo, hi float64) float64 {
		p, _ := quant.SymmetricParams(lo, hi, cfg.Range())
		e := 0.0
		for _, x := range v {
			d := x - quant.FakeQuantizeValue(x, float64(p.Scale), 0, -7, 7)
			e += d * d
		}
		return e
	}
	mn, mx := -40.0, 40.0
	for _, x := range v {
		mn, mx = math.Min(mn, x), math.Max(mx, x)
	}
	if !(mse(lo[0], hi[0]) < 0.5*mse(mn, mx)) {
		t.Fatalf("MSE range [%v %v] err %v, min/max err %v", lo[0], hi[0], mse(lo[0], hi[0]), mse(mn, mx))
	}
	// brute force over the same candidate set finds nothing better
	for j := 100; j >= 20; j-- {
		r := float64(j) / 100
		if mse(mn*r, mx*r) < mse(lo[0], hi[0])-1e-9 {
			t.Fatalf("ratio %v beats the chosen range", r)
		}
	}
}

func TestSetParamsValidation(t *testing.T) {
	g := G.NewGraph()
	x := G.NewVector(g, tensor.Float32, G.WithShape(4), G.WithName("x"), G.WithValue(denseOf(tensor.Float32, []int{4}, []float64{1, 2, 3, 4})))
	q, err := New(g, x, Config{Name: "w", Bits: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range [][]quant.Params{
		{},
		{{Scale: 0}},
		{{Scale: float32(math.Inf(1))}},
		{{Scale: 1, ZeroPoint: 3}}, // symmetric needs 0
	} {
		if err := q.SetParams(ps); err == nil {
			t.Errorf("%+v accepted", ps)
		}
	}
	if _, err := New(g, x, Config{Name: "bad", Bits: 8, Granularity: PerChannel, Axis: 3}); err == nil {
		t.Fatal("bad axis accepted")
	}
	if _, err := New(g, x, Config{Name: "w", Bits: 8}); !errors.Is(err, ErrConfig) {
		t.Fatalf("duplicate name: %v", err)
	}
	xi := G.NewVector(g, tensor.Int, G.WithShape(4), G.WithName("xi"))
	if _, err := New(g, xi, Config{Name: "int", Bits: 8}); err == nil {
		t.Fatal("int input accepted")
	}
}

// TestSteadyStateAllocations checks that after warm-up the forward and gradient ops allocate
// nothing per step.
func TestSteadyStateAllocations(t *testing.T) {
	defer func(v int) { parallelMin = v }(parallelMin)
	for i, cfg := range []Config{
		{Name: "lsq", Bits: 4, Scheme: AsymmetricSigned, LearnOffset: true, Granularity: PerChannel, Axis: 1},
		{Name: "obs", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.1},
		{Name: "pact", Bits: 8, Method: PACT, Granularity: PerGroup, Axis: 0, GroupSize: 2},
		{Name: "lsq-split", Bits: 4, Granularity: PerChannel, Axis: 0},
		{Name: "obs-split", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.1},
		{Name: "obs-1pass-split", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.1, SinglePass: true},
	} {
		parallelMin = 1 << 30
		if i >= 3 {
			parallelMin = 1 // force the two-goroutine split
		}
		x := make([]float64, 64)
		for i := range x {
			x[i] = float64(i%7) - 3
		}
		h := newHarness(t, tensor.Float32, []int{8, 8}, x, cfg, 1)
		h.run(t)
		fwd := h.q.Out.Op().(*fqOp)
		gop := &fqGradOp{q: h.q}
		vals := append([]G.Value{h.x.Value()}, h.q.paramValues()...)
		bvals := append(append([]G.Value{}, vals...), h.x.Value())
		if _, err := gop.Do(bvals...); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(20, func() {
			if _, err := fwd.Do(vals...); err != nil {
				t.Fatal(err)
			}
			if _, err := gop.Do(bvals...); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per step", cfg.Name, n)
		}
	}
}

// ExampleNew builds a 4-bit per-channel LSQ weight quantizer and reads the parameters export uses.
func ExampleNew() {
	g := G.NewGraph()
	w := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 4), G.WithName("fc.w"),
		G.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking([]float32{0.7, -0.35, 0.1, 0, 1.4, 0.2, -0.9, 0.3}))))
	q, err := New(g, w, Config{Name: "fc.w", Bits: 4, Scheme: SymmetricNarrow, Granularity: PerChannel, Axis: 0, Method: LSQ})
	if err != nil {
		panic(err)
	}
	if err := q.SetParams([]quant.Params{{Scale: 0.1}, {Scale: 0.2}}); err != nil {
		panic(err)
	}
	vm := G.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		panic(err)
	}
	ps, _ := q.Params()
	fmt.Println(q.Range(), len(q.Learnables()), ps[0].ZeroPoint)
	fmt.Printf("%.2f\n", q.Out.Value().Data())
	// Output:
	// [-7,7] 1 0
	// [0.70 -0.40 0.10 0.00 1.40 0.20 -1.00 0.40]
}

func TestObservedSetParamsThenUnfreeze(t *testing.T) {
	for _, scheme := range []Scheme{SymmetricNarrow, AsymmetricSigned, AsymmetricUnsigned} {
		cfg := Config{Name: "o", Bits: 8, Scheme: scheme, Method: Observed, Momentum: 0.5}
		h := newHarness(t, tensor.Float32, []int{4}, []float64{0.5, 1, 2, 3}, cfg, 1)
		want := quant.Params{Scale: 0.02}
		if scheme != SymmetricNarrow {
			want.ZeroPoint = cfg.Range().Min + 10
		}
		if err := h.q.SetParams([]quant.Params{want}); err != nil {
			t.Fatal(err)
		}
		h.q.Unfreeze()
		ps, err := h.q.Params()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(ps[0].Scale-want.Scale)) > 1e-9 || ps[0].ZeroPoint != want.ZeroPoint {
			t.Fatalf("%v: params after Unfreeze %+v, set %+v", scheme, ps[0], want)
		}
		h.run(t) // one batch moves the range halfway toward [0.5, 3] (widened to contain 0)
		lo, hi, _ := h.q.ObserverRange()
		wlo := float64(want.Scale) * float64(cfg.Range().Min-want.ZeroPoint)
		whi := float64(want.Scale) * float64(cfg.Range().Max-want.ZeroPoint)
		if math.Abs(lo[0]-(wlo+0.5*(0.5-wlo))) > 1e-6 || math.Abs(hi[0]-(whi+0.5*(3-whi))) > 1e-6 {
			t.Fatalf("%v: range after one EMA step [%v %v] from [%v %v]", scheme, lo[0], hi[0], wlo, whi)
		}
	}
}
