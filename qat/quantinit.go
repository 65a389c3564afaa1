package qat

import (
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
)

// QuantInit chooses how a Trainer starts the quantizers of a prepared network before its first
// QAT step (Config.QuantInit).
type QuantInit int

const (
	// InitCalibrated (the default): activation sites take the ranges that the observed twin of
	// the QConfig records on Config.CalibBatches calibration batches (learned sites through
	// SetRange, observers directly); learned weight sites the LSQ rule 2*mean|w|/sqrt(Qp) on the
	// current (folded) weights, or the range of the spec's percentile or MSE observer.
	InitCalibrated QuantInit = iota
	// InitMinMax: every quantizer (weights per channel or group, activations) takes the min/max
	// of its input in one float pass over calibration batch 0 (round-to-nearest with min/max
	// ranges; what LLM QAT usually starts from).
	InitMinMax
)

// InitQuantizers starts every quantizer of the prepared network as Config.QuantInit says; Fit
// calls it before the first step unless it ran already. Without a Prepared it does nothing.
func (t *Trainer) InitQuantizers() error {
	if t.Prep == nil {
		return nil
	}
	var ranges map[string][2][]float64
	if t.Cfg.QuantInit == InitCalibrated {
		tw, err := Prepare(t.Net, ObservedTwin(t.Prep.Config))
		if err != nil {
			return err
		}
		if _, err := observe(t.Task, tw, t.Cfg.CalibBatches, t.Cfg.BatchSize, t.Cfg.Seed); err != nil {
			return err
		}
		ranges = map[string][2][]float64{}
		for name, st := range tw.state {
			if lo, hi, ok := st.fq.Observed(); ok {
				ranges[name] = [2][]float64{lo, hi}
			}
		}
	}
	if err := t.ensureTrain(); err != nil {
		return err
	}
	// one pass of the training graph with fake quantization off gives every quantizer its
	// (float) input: the folded weights, the activations of calibration batch 0
	r := t.train
	if err := t.Task.Feed(r.g, BatchID{Calib: true, Seed: t.Cfg.Seed}); err != nil {
		return err
	}
	if err := t.Prep.whileDisabled(r.run); err != nil {
		return err
	}
	switch t.Cfg.QuantInit {
	case InitCalibrated:
		if err := t.Prep.initLSQ(r.nq, ranges); err != nil {
			return err
		}
		for name, rg := range ranges {
			st := t.Prep.state[name]
			if st.cfg.Method == fakequant.Observed {
				if err := st.fq.RestoreRange(rg[0], rg[1]); err != nil {
					return fmt.Errorf("qat: site %q: %w", name, err)
				}
			}
		}
	case InitMinMax:
		for name, q := range r.nq.Qs {
			v, err := inputFloats(q)
			if err != nil {
				return err
			}
			o := fakequant.NewMinMaxObserver(q.Layout(), 0)
			if err := o.Observe(v); err != nil {
				return fmt.Errorf("qat: site %q: %w", name, err)
			}
			lo, hi, err := o.Range()
			if err != nil {
				return fmt.Errorf("qat: site %q: %w", name, err)
			}
			if err := q.SetRange(lo, hi); err != nil {
				return fmt.Errorf("qat: site %q: %w", name, err)
			}
		}
	default:
		return fmt.Errorf("qat: unknown QuantInit %d", t.Cfg.QuantInit)
	}
	t.bindValues(r) // learnables may have been created by this first graph
	t.qatInit = true
	return nil
}
