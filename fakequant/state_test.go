package fakequant

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// sharedGraph is one fake-quant node over a constant input of the given shape, on a shared State.
type sharedGraph struct {
	x  *G.Node
	q  *Quantizer
	vm G.VM
}

func newSharedGraph(t *testing.T, shape []int, cfg Config, st *State) *sharedGraph {
	t.Helper()
	g := G.NewGraph()
	n := 1
	for _, d := range shape {
		n *= d
	}
	x := G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(make([]float32, n)))))
	q, err := NewShared(g, x, cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return &sharedGraph{x: x, q: q, vm: G.NewTapeMachine(g)}
}

func (s *sharedGraph) run(t *testing.T, v []float32) {
	t.Helper()
	copy(s.x.Value().Data().([]float32), v)
	s.vm.Reset()
	if err := s.vm.RunAll(); err != nil {
		t.Fatal(err)
	}
}

func randF32(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// Two graphs of different batch sizes share one State: what the training graph observes the
// evaluation graph quantizes with at once (no copy), the evaluation graph (SetEval) does not
// change the state, and flags set through one quantizer hold in the other.
func TestSharedStateAcrossGraphs(t *testing.T) {
	cfg := Config{Name: "act", Bits: 8, Method: Observed, Scheme: AsymmetricSigned, Momentum: 0.5}
	st := NewState()
	train := newSharedGraph(t, []int{4, 6}, cfg, st)
	eval := newSharedGraph(t, []int{2, 6}, cfg, st)
	eval.q.SetEval(true)
	r := rand.New(rand.NewPCG(1, 2))

	// hand-computed EMA of the per-batch extrema (momentum 0.5)
	var lo, hi float64
	for b := 0; b < 3; b++ {
		v := randF32(r, 24, float64(b+1))
		train.run(t, v)
		mn, mx := float64(slices.Min(v)), float64(slices.Max(v))
		if b == 0 {
			lo, hi = mn, mx
		} else {
			lo, hi = lo+0.5*(mn-lo), hi+0.5*(mx-hi)
		}
	}
	gotLo, gotHi, ok := st.Observed()
	if !ok || gotLo[0] != lo || gotHi[0] != hi {
		t.Fatalf("state range [%v, %v] ok=%v, want [%v, %v]", gotLo, gotHi, ok, lo, hi)
	}
	before, _ := train.q.Params()
	eval.run(t, randF32(r, 12, 100)) // far outside the range: would move an observer
	after, _ := eval.q.Params()
	if !slices.Equal(before, after) {
		t.Errorf("evaluation graph params %v, training graph %v", after, before)
	}
	if l2, h2, _ := st.Observed(); l2[0] != lo || h2[0] != hi {
		t.Errorf("evaluation graph changed the shared range to [%v, %v]", l2, h2)
	}
	want, err := quant.AsymmetricParams(lo, hi, cfg.Range())
	if err != nil {
		t.Fatal(err)
	}
	if sp, err := st.Params(cfg); err != nil || sp[0] != want || sp[0] != before[0] {
		t.Errorf("State.Params %v (%v), want %v = graph %v", sp, err, want, before[0])
	}
	train.q.Freeze()
	if !eval.q.Frozen() {
		t.Error("Freeze through one quantizer does not reach the other")
	}
	eval.q.SetEnabled(false)
	if train.q.Enabled() || st.Enabled() {
		t.Error("SetEnabled through one quantizer does not reach the state")
	}
	// fixed parameters set through one graph are used by the other
	fixed := []quant.Params{{Scale: 0.25, ZeroPoint: 3}}
	st.SetEnabled(true)
	if err := eval.q.SetParams(fixed); err != nil {
		t.Fatal(err)
	}
	if got, _ := train.q.Params(); !slices.Equal(got, fixed) {
		t.Errorf("training graph params %v after SetParams on the evaluation graph, want %v", got, fixed)
	}
	// a state sized for 1 slice refuses a per-channel quantizer of 6
	pc := cfg
	pc.Granularity, pc.Axis = PerChannel, 1
	if _, err := NewShared(G.NewGraph(), train.x, pc, st); !errors.Is(err, ErrConfig) {
		t.Errorf("mismatched slice count: err %v, want ErrConfig", err)
	}
}

// State.Observe on a weight gives exactly the range the forward pass of an Observed quantizer
// records, per channel and per group, with momentum over two observations.
func TestStateObserveMatchesForward(t *testing.T) {
	for _, cfg := range []Config{
		{Name: "pc", Bits: 8, Method: Observed, Granularity: PerChannel, Axis: 0, Momentum: 0.3},
		{Name: "pg", Bits: 4, Method: Observed, Granularity: PerGroup, Axis: 1, GroupSize: 4, Momentum: 0},
		{Name: "pt", Bits: 8, Method: Observed, Scheme: AsymmetricSigned, Momentum: 1},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			shape := []int{3, 8}
			r := rand.New(rand.NewPCG(7, 7))
			graphState, plain := NewState(), NewState()
			g := newSharedGraph(t, shape, cfg, graphState)
			for b := 0; b < 2; b++ {
				v := randF32(r, 24, 1)
				g.run(t, v)
				if err := plain.Observe(cfg, shape, v); err != nil {
					t.Fatal(err)
				}
			}
			l1, h1, _ := graphState.Observed()
			l2, h2, ok := plain.Observed()
			if !ok || !slices.Equal(l1, l2) || !slices.Equal(h1, h2) {
				t.Errorf("Observe range [%v, %v], forward [%v, %v]", l2, h2, l1, h1)
			}
			p1, _ := g.q.Params()
			p2, err := plain.Params(cfg)
			if err != nil || !slices.Equal(p1, p2) {
				t.Errorf("State.Params %v (%v), graph %v", p2, err, p1)
			}
		})
	}
	st := NewState()
	if err := st.Observe(Config{Name: "nan", Bits: 8, Method: Observed}, []int{2}, []float32{1, float32(math.NaN())}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN: err %v, want ErrNonFinite", err)
	}
	if err := st.Observe(Config{Name: "lsq", Bits: 8}, []int{2}, []float32{1, 2}); !errors.Is(err, ErrConfig) {
		t.Errorf("LSQ config: err %v, want ErrConfig", err)
	}
	if _, err := NewState().Params(Config{Name: "empty", Bits: 8, Method: Observed}); !errors.Is(err, ErrNotCalibrated) {
		t.Errorf("empty state: err %v, want ErrNotCalibrated", err)
	}
}

// LearnedParams computes, from plain values of the learnables, what a graph's quantizer computes
// from its nodes: LSQ (fixed zero point, learned offset, unsigned) and PACT.
func TestLearnedParamsMatchesQuantizer(t *testing.T) {
	for _, cfg := range []Config{
		{Name: "lsq", Bits: 4, Granularity: PerChannel, Axis: 0},
		{Name: "lsq+", Bits: 8, Scheme: AsymmetricSigned, LearnOffset: true},
		{Name: "lsq-u", Bits: 8, Scheme: AsymmetricUnsigned},
		{Name: "pact", Bits: 4, Method: PACT},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			g := newSharedGraph(t, []int{3, 5}, cfg, NewState())
			r := rand.New(rand.NewPCG(3, 4))
			var vals [][]float64
			for _, n := range g.q.Learnables() {
				v := make([]float64, n.Shape().TotalSize())
				for i := range v {
					v[i] = r.Float64()*3 - 2.5
					if cfg.Method == PACT {
						v[i] = r.Float64() * 4
					}
					if n == g.q.Offset {
						v[i] = r.Float64()*40 - 20
					}
				}
				setFloats(n.Value(), v)
				vals = append(vals, v)
			}
			want, err := g.q.Params()
			if err != nil {
				t.Fatal(err)
			}
			got, err := LearnedParams(cfg, vals...)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("LearnedParams %v (%v), quantizer %v", got, err, want)
			}
		})
	}
	if _, err := LearnedParams(Config{Name: "o", Bits: 8, Method: Observed}, []float64{1}); !errors.Is(err, ErrConfig) {
		t.Errorf("Observed: err %v, want ErrConfig", err)
	}
	if _, err := LearnedParams(Config{Name: "l", Bits: 8}, []float64{math.Inf(1)}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("Inf log-scale: err %v, want ErrNonFinite", err)
	}
}
