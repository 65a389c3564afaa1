package fakequant

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/quant"
)

// State is the part of a fake-quantizer that outlives one graph: the observer's range, the
// parameters fixed by SetParams, and the enabled and frozen flags. (Learned parameters are tensors:
// graphs share them by binding the same tensor, see qat.Prepared.)
//
// A Quantizer made by New owns a private State. NewShared makes the quantizers of several graphs
// of one model (a training graph, an evaluation graph of another batch size) use one State, so
// there is one copy of it: what one graph observes the others use at once, and a checkpoint or an
// exporter reads it from the State without running a graph. Per graph stays only the scratch of
// a forward pass and the evaluation flag (SetEval).
//
// A State is not safe for concurrent use: graphs sharing it must not run at the same time.
type State struct {
	slices int // K, fixed by the first quantizer attached (0: not yet)

	init   bool      // the observer has a range (seen data, SetRange or SetParams)
	lo, hi []float64 // observed per-slice range
	fixed  bool      // parameters fixed by SetParams (the observer is bypassed until Unfreeze)
	scales []float32 // the fixed parameters
	zps    []int32

	disabled, frozen bool
}

// NewState returns an empty State: enabled, not frozen, no observed range.
func NewState() *State { return &State{} }

// attach sizes the state for k slices (the first quantizer), or checks that k matches.
func (s *State) attach(name string, k int) error {
	if s.slices == 0 {
		s.slices = k
		s.lo, s.hi = make([]float64, k), make([]float64, k)
		s.scales, s.zps = make([]float32, k), make([]int32, k)
		return nil
	}
	if s.slices != k {
		return fmt.Errorf("%w: %s: shared state has %d slices, this input needs %d", ErrConfig, name, s.slices, k)
	}
	return nil
}

// Slices returns the number of (scale, zero point) slices, 0 before a quantizer uses the state
// (or a range is restored into it).
func (s *State) Slices() int { return s.slices }

// Enabled reports whether fake quantization is on.
func (s *State) Enabled() bool { return !s.disabled }

// SetEnabled switches fake quantization on or off for every quantizer of the state.
func (s *State) SetEnabled(on bool) { s.disabled = !on }

// Frozen reports whether observer updates are stopped.
func (s *State) Frozen() bool { return s.frozen }

// Freeze stops observer updates.
func (s *State) Freeze() { s.frozen = true }

// Unfreeze resumes observer updates and drops parameters fixed by SetParams.
func (s *State) Unfreeze() { s.frozen, s.fixed = false, false }

// Observed returns copies of the per-slice observed range, and false when there is none.
func (s *State) Observed() (lo, hi []float64, ok bool) {
	if !s.init {
		return nil, nil, false
	}
	return append([]float64(nil), s.lo...), append([]float64(nil), s.hi...), true
}

// Fixed returns a copy of the parameters fixed by SetParams, or nil.
func (s *State) Fixed() []quant.Params {
	if !s.fixed {
		return nil
	}
	ps := make([]quant.Params, s.slices)
	for i := range ps {
		ps[i] = quant.Params{Scale: s.scales[i], ZeroPoint: s.zps[i]}
	}
	return ps
}

// RestoreRange sets the observed range (checkpoint restore); it does not touch fixed parameters
// or flags. The number of slices must match the state's once it is known.
func (s *State) RestoreRange(lo, hi []float64) error {
	if len(lo) != len(hi) || len(lo) == 0 {
		return fmt.Errorf("fakequant: observed range of %d/%d values", len(lo), len(hi))
	}
	for i := range lo {
		if math.IsNaN(lo[i]) || math.IsNaN(hi[i]) || math.IsInf(lo[i], 0) || math.IsInf(hi[i], 0) || lo[i] > hi[i] {
			return fmt.Errorf("fakequant: observed range %d is [%v, %v]", i, lo[i], hi[i])
		}
	}
	if err := s.attach("state", len(lo)); err != nil {
		return err
	}
	copy(s.lo, lo)
	copy(s.hi, hi)
	s.init = true
	return nil
}

// RestoreFixed sets fixed parameters (checkpoint restore) without changing the observed range or
// flags. Scales must be finite and >= quant.MinScale.
func (s *State) RestoreFixed(ps []quant.Params) error {
	if len(ps) == 0 {
		return fmt.Errorf("fakequant: no fixed parameters")
	}
	for i, p := range ps {
		if !(p.Scale >= quant.MinScale) || math.IsInf(float64(p.Scale), 0) {
			return fmt.Errorf("fakequant: fixed parameter %d: scale %v below quant.MinScale or not finite", i, p.Scale)
		}
	}
	if err := s.attach("state", len(ps)); err != nil {
		return err
	}
	for i, p := range ps {
		s.scales[i], s.zps[i] = p.Scale, p.ZeroPoint
	}
	s.fixed = true
	return nil
}

// fold merges one batch's per-slice extrema into the observed range with momentum m (0: running
// min/max; otherwise an EMA, 1 keeps only the last batch).
func (s *State) fold(m float64, bLo, bHi []float64) {
	for k := range s.lo {
		switch {
		case !s.init:
			s.lo[k], s.hi[k] = bLo[k], bHi[k]
		case m == 0:
			s.lo[k] = min(s.lo[k], bLo[k])
			s.hi[k] = max(s.hi[k], bHi[k])
		default:
			s.lo[k] += m * (bLo[k] - s.lo[k])
			s.hi[k] += m * (bHi[k] - s.hi[k])
		}
	}
	s.init = true
}

// Observe updates the state as an Observed quantizer's forward pass on x (a tensor of the given
// shape, row-major) does, without a graph: the per-slice minimum and maximum of x merged into the
// range with cfg.Momentum. It does nothing when the state is disabled, frozen or fixed. An
// exporter uses it to observe the final weights it writes. Errors: a Config that is not Observed
// or does not fit the shape, a slice count that differs from the state's, a NaN or Inf in x.
func (s *State) Observe(cfg Config, shape []int, x []float32) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Method != Observed {
		return fmt.Errorf("%w: %s: Observe needs an Observed config, not %v", ErrConfig, cfg.Name, cfg.Method)
	}
	l, err := NewLayout(shape, cfg)
	if err != nil {
		return err
	}
	if l.Len() != len(x) {
		return fmt.Errorf("%w: %s: %d values for shape %v", ErrConfig, cfg.Name, len(x), shape)
	}
	k := l.Slices()
	if err := s.attach(cfg.Name, k); err != nil {
		return err
	}
	if s.disabled || s.frozen || s.fixed {
		return nil
	}
	bLo, bHi := make([]float64, k), make([]float64, k)
	for i := range bLo {
		bLo[i], bHi[i] = math.Inf(1), math.Inf(-1)
	}
	for i, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%w: %s: element %d is %v", ErrNonFinite, cfg.Name, i, v)
		}
		j := l.Slice(i)
		bLo[j], bHi[j] = min(bLo[j], f), max(bHi[j], f)
	}
	s.fold(cfg.Momentum, bLo, bHi)
	return nil
}

// Params returns the parameters an Observed quantizer of cfg uses with this state: the fixed ones,
// or those of the observed range. It returns ErrNotCalibrated when there are neither.
func (s *State) Params(cfg Config) ([]quant.Params, error) {
	if s.fixed {
		return s.Fixed(), nil
	}
	if !s.init {
		return nil, fmt.Errorf("%w: %s", ErrNotCalibrated, cfg.Name)
	}
	ps := make([]quant.Params, s.slices)
	r := cfg.Range()
	for i := range ps {
		p, err := paramsFromRange(cfg, r, s.lo[i], s.hi[i])
		if err != nil {
			return nil, fmt.Errorf("fakequant: %s: slice %d: %w", cfg.Name, i, err)
		}
		ps[i] = p
	}
	return ps, nil
}

// LearnedParams returns the parameters an LSQ or PACT quantizer of cfg uses when its learnable
// tensors hold the given values (LSQ: log-scale, then the offset with LearnOffset; PACT: alpha),
// computed exactly as the forward pass computes them. Exporters read learned parameters with it,
// without a graph.
func LearnedParams(cfg Config, learnables ...[]float64) ([]quant.Params, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want := 1
	switch {
	case cfg.Method == LSQ && cfg.LearnOffset:
		want = 2
	case cfg.Method != LSQ && cfg.Method != PACT:
		return nil, fmt.Errorf("%w: %s: %v has no learned parameters", ErrConfig, cfg.Name, cfg.Method)
	}
	if len(learnables) != want {
		return nil, fmt.Errorf("%w: %s: %d learnable vectors, want %d", ErrConfig, cfg.Name, len(learnables), want)
	}
	k := len(learnables[0])
	if k == 0 || (want == 2 && len(learnables[1]) != k) {
		return nil, fmt.Errorf("%w: %s: learnable vectors of lengths %d and %d", ErrConfig, cfg.Name, k, len(learnables[len(learnables)-1]))
	}
	r := cfg.Range()
	ps := make([]quant.Params, k)
	for i, t := range learnables[0] {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("%w: node %s: learned parameter of slice %d is %v", ErrNonFinite, cfg.Name, i, t)
		}
		if cfg.Method == PACT {
			ps[i] = quant.Params{Scale: pactScale(t, r.Max)}
			continue
		}
		ps[i].Scale = cfg.learnedScale(t)
		switch {
		case cfg.LearnOffset:
			z := learnables[1][i]
			if math.IsNaN(z) || math.IsInf(z, 0) {
				return nil, fmt.Errorf("%w: node %s: offset of slice %d is %v", ErrNonFinite, cfg.Name, i, z)
			}
			ps[i].ZeroPoint = zeroFromOffset(z, r.Min, r.Max)
		case cfg.Scheme == AsymmetricUnsigned && !cfg.Symmetric():
			ps[i].ZeroPoint = r.Min
		}
	}
	return ps, nil
}
