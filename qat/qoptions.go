package qat

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
)

// Scheme chooses the integer range of a site (Spec.Scheme). The zero value SchemeDefault keeps the
// runtime contract: symmetric narrow-range weights, asymmetric signed activations.
type Scheme int

const (
	// SchemeDefault is symmetric narrow-range for weights and asymmetric signed for activations.
	SchemeDefault Scheme = iota
	// SchemeSymmetric is fakequant.SymmetricNarrow: [-(2^(b-1)-1), 2^(b-1)-1], zero point 0.
	SchemeSymmetric
	// SchemeAsymmetric is fakequant.AsymmetricSigned: [-2^(b-1), 2^(b-1)-1] with a zero point.
	SchemeAsymmetric
	// SchemeUnsigned is fakequant.AsymmetricUnsigned: [0, 2^b-1] with a zero point.
	SchemeUnsigned
)

var schemeNames = [...]string{"", "symmetric", "asymmetric", "unsigned"}

// String names the scheme ("" for SchemeDefault).
func (s Scheme) String() string {
	if s >= SchemeDefault && int(s) < len(schemeNames) {
		return schemeNames[s]
	}
	return fmt.Sprintf("Scheme(%d)", int(s))
}

// parseScheme is the inverse of Scheme.String.
func parseScheme(n string) (Scheme, error) {
	for i, s := range schemeNames {
		if s == n {
			return Scheme(i), nil
		}
	}
	return 0, fmt.Errorf("qat: unknown scheme %q (symmetric, asymmetric, unsigned)", n)
}

// fq returns the fakequant scheme of s at a weight (weight true) or activation site.
func (s Scheme) fq(weight bool) fakequant.Scheme {
	switch s {
	case SchemeSymmetric:
		return fakequant.SymmetricNarrow
	case SchemeAsymmetric:
		return fakequant.AsymmetricSigned
	case SchemeUnsigned:
		return fakequant.AsymmetricUnsigned
	}
	if weight {
		return fakequant.SymmetricNarrow
	}
	return fakequant.AsymmetricSigned
}

// Observer chooses how a site's range is found during PTQ calibration (Calibrate) and when
// quantizers are initialised before QAT (Trainer): Spec.Observer.
type Observer int

const (
	// ObserverMinMax (the default) is the running min/max over the calibration batches; with a
	// non-zero Spec.Momentum during QAT it is the EMA of the batch min/max (as before these options).
	ObserverMinMax Observer = iota
	// ObserverEMA is the exponential moving average of the batch min/max with Spec.Momentum in
	// (0, 1), also during calibration (where ObserverMinMax keeps the running min/max).
	ObserverEMA
	// ObserverPercentile clips each slice at the [100-P, P] percentiles (P = Spec.Percentile,
	// default DefaultPercentile) of a sample of the calibration data (fakequant.PercentileObserver).
	ObserverPercentile
	// ObserverMSE picks the clipped range with the smallest squared fake-quantization error on a
	// sample of the calibration data (fakequant.MSEObserver).
	ObserverMSE
)

// DefaultPercentile is the percentile of ObserverPercentile when Spec.Percentile is 0.
const DefaultPercentile = 99.99

// observerSamples bounds the reservoir sample per slice of the percentile and MSE observers.
const observerSamples = 1 << 16

var observerNames = [...]string{"", "ema", "percentile", "mse"}

// String names the observer ("" for ObserverMinMax, written as "minmax" in error messages only).
func (o Observer) String() string {
	if o >= ObserverMinMax && int(o) < len(observerNames) {
		return observerNames[o]
	}
	return fmt.Sprintf("Observer(%d)", int(o))
}

// parseObserver is the inverse of Observer.String; it also accepts "minmax".
func parseObserver(n string) (Observer, error) {
	if n == "minmax" {
		return ObserverMinMax, nil
	}
	for i, s := range observerNames {
		if s == n {
			return Observer(i), nil
		}
	}
	return 0, fmt.Errorf("qat: unknown observer %q (minmax, ema, percentile, mse)", n)
}

// sampled reports whether the observer needs a sample of the data (percentile, MSE).
func (o Observer) sampled() bool { return o == ObserverPercentile || o == ObserverMSE }

// validate checks the options of sp (after overrides) at site s, beyond what fakequant.Config.Validate checks.
func (sp Spec) validate(s graph.Site) error {
	weight := s.Kind == graph.SiteWeight
	switch {
	case sp.Scheme < SchemeDefault || int(sp.Scheme) >= len(schemeNames):
		return fmt.Errorf("unknown %v", sp.Scheme)
	case sp.Observer < ObserverMinMax || int(sp.Observer) >= len(observerNames):
		return fmt.Errorf("unknown %v", sp.Observer)
	case sp.Method == fakequant.PACT && sp.Scheme != SchemeDefault && sp.Scheme != SchemeUnsigned:
		return fmt.Errorf("PACT is always unsigned with zero point 0; scheme %q is not possible", sp.Scheme)
	case sp.LearnOffset && sp.Method == fakequant.LSQ && sp.Scheme == SchemeSymmetric:
		return fmt.Errorf("LearnOffset needs an asymmetric scheme")
	case sp.ScaleF16 && (!weight || sp.Method != fakequant.LSQ):
		return fmt.Errorf("ScaleF16 is for learned (LSQ) weight scales only")
	case sp.GroupSize < 0:
		return fmt.Errorf("GroupSize %d < 0", sp.GroupSize)
	case s.Kind == graph.SiteKVCache && (sp.Method == fakequant.PACT || sp.LearnOffset || sp.PerTensor ||
		(sp.Scheme != SchemeDefault && sp.Scheme != SchemeSymmetric)):
		return fmt.Errorf("the KV cache is symmetric with one scale per head: LSQ or Observed, no offset, no other scheme or granularity")
	case sp.GroupSize > 0 && !weight:
		return fmt.Errorf("GroupSize (per-group granularity) is for weights only")
	case sp.GroupSize > 0 && sp.PerTensor:
		return fmt.Errorf("GroupSize and PerTensor exclude each other")
	case sp.Observer == ObserverEMA && !(sp.Momentum > 0 && sp.Momentum < 1):
		return fmt.Errorf("the EMA observer needs Momentum in (0, 1), got %v", sp.Momentum)
	case sp.Percentile != 0 && sp.Observer != ObserverPercentile:
		return fmt.Errorf("Percentile %v set without the percentile observer", sp.Percentile)
	case sp.Observer == ObserverPercentile && sp.Percentile != 0 && !(sp.Percentile > 50 && sp.Percentile <= 100):
		return fmt.Errorf("Percentile %v outside (50, 100]", sp.Percentile)
	case sp.Observer == ObserverPercentile && math.IsNaN(sp.Percentile):
		return fmt.Errorf("Percentile is NaN")
	}
	if sp.GroupSize > 0 {
		if len(s.Shape) < 2 {
			return fmt.Errorf("per-group weights need an input dimension (shape %v)", s.Shape)
		}
		if in := s.Shape[1]; in%sp.GroupSize != 0 {
			return fmt.Errorf("group size %d does not divide the input size %d (weight shape %v)", sp.GroupSize, in, s.Shape)
		}
	}
	return nil
}

// percentile is the effective percentile of an ObserverPercentile spec.
func (sp Spec) percentile() float64 {
	if sp.Percentile == 0 {
		return DefaultPercentile
	}
	return sp.Percentile
}

// rangeObserver is fakequant.PercentileObserver or MSEObserver.
type rangeObserver interface {
	Observe(v []float64) error
	Range() (lo, hi []float64, err error)
}

// newRangeObserver returns the sampling observer of sp for a quantizer q (nil for min/max and EMA).
func newRangeObserver(sp Spec, q *fakequant.Quantizer) (rangeObserver, error) {
	switch sp.Observer {
	case ObserverPercentile:
		return fakequant.NewPercentileObserver(q.Layout(), sp.percentile(), observerSamples)
	case ObserverMSE:
		return fakequant.NewMSEObserver(q.Layout(), q.Config(), observerSamples)
	}
	return nil, nil
}

// inputFloats returns the current value of q's input node as float64s.
func inputFloats(q *fakequant.Quantizer) ([]float64, error) {
	v := q.In.Value()
	if v == nil {
		return nil, fmt.Errorf("qat: quantizer %s: input has no value (the graph has not run)", q.Config().Name)
	}
	switch d := v.Data().(type) {
	case []float64:
		return d, nil
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("qat: quantizer %s: input is not float32/float64", q.Config().Name)
}
