package qat

import (
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// ObservedTwin returns c with every quantized site switched to an observer: weights track their
// current per-channel min/max (momentum 1), activations keep the running min/max over the
// calibration batches (momentum 0; with ObserverEMA their EMA with the spec's momentum), in two
// passes (no SinglePass); KV-cache sites (QConfig.KV) like activations. Bit widths, schemes,
// granularity, observer choices and overrides are kept; the name gets ObservedSuffix.
func ObservedTwin(c QConfig) QConfig {
	conv := func(s Spec, weight bool) Spec {
		s.Method, s.LearnOffset, s.SinglePass, s.ScaleF16 = fakequant.Observed, false, false, false
		switch {
		case weight:
			s.Momentum = 1
			if s.Observer == ObserverEMA { // a weight does not change while calibrating
				s.Observer = ObserverMinMax
			}
		case s.Observer != ObserverEMA:
			s.Momentum = 0
		}
		return s
	}
	out := QConfig{Name: c.Name + ObservedSuffix, Weight: conv(c.Weight, true), Act: conv(c.Act, false), GGML: c.GGML}
	if len(c.Overrides) > 0 {
		out.Overrides = map[string]Override{}
	}
	if c.KV != nil {
		kv := conv(*c.KV, false)
		out.KV = &kv
	}
	for k, o := range c.Overrides {
		var n Override
		if o.Weight != nil {
			w := conv(*o.Weight, true)
			n.Weight = &w
		}
		if o.Act != nil {
			a := conv(*o.Act, false)
			n.Act = &a
		}
		out.Overrides[k] = n
	}
	return out
}

// Calibrate is post-training quantization of a layer model on image data: CalibrateTask of a
// ClassifyTask, whose calibration batches are a seeded random sample of train.
func Calibrate(m *graph.Model, c QConfig, train Dataset, batches, batchSize int, seed uint64) (*Prepared, error) {
	return CalibrateTask(Classify(m, train), c, batches, batchSize, seed)
}

// CalibrateTask is post-training quantization of any task's network (a layer model, an LM): it
// prepares the network with the observed twin of c (ObservedTwin) and runs Trainer.Calibrate over
// the task's calibration batches 0..batches-1 of batchSize examples (seed: the data order of a
// task that shuffles). No parameter changes.
func CalibrateTask(task Task, c QConfig, batches, batchSize int, seed uint64) (*Prepared, error) {
	net, err := networkOf(task)
	if err != nil {
		return nil, err
	}
	p, err := Prepare(net, ObservedTwin(c))
	if err != nil {
		return nil, err
	}
	t, err := NewTrainer(task, p, Config{BatchSize: batchSize, Seed: seed})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if err := t.Calibrate(batches); err != nil {
		return nil, err
	}
	return p, nil
}

// Calibrate is post-training quantization with the trainer's Prepared: it runs calibration
// batches 0..batches-1 of the task (BatchSize examples each) through a graph whose observers
// track (running BN statistics, BN folded as export folds it), then freezes them. Sites whose
// Spec.Observer is ObserverPercentile or ObserverMSE take their range from that observer on a
// sample of the values seen in those batches (weights: the folded weight). No parameter changes.
func (t *Trainer) Calibrate(batches int) error {
	if t.Prep == nil {
		return fmt.Errorf("qat: calibrating a float network (the trainer has no Prepared)")
	}
	if _, err := observe(t.Task, t.Prep, batches, t.Cfg.BatchSize, t.Cfg.Seed); err != nil {
		return err
	}
	t.Prep.FreezeObservers(true)
	return nil
}

// observe runs calibration batches 0..batches-1 of task (B examples each) through a calibration
// graph of p (its observers track) and sets the range of every site with a sampling observer.
func observe(task Task, p *Prepared, batches, B int, seed uint64) (*NetQuant, error) {
	if batches < 1 || B < 1 {
		return nil, fmt.Errorf("qat: calibration with %d batches of %d", batches, B)
	}
	nq := p.Quantizer()
	g, err := task.Build(BuildOptions{Batch: B, Quant: nq, FoldBN: true})
	if err != nil {
		return nil, err
	}
	vm := G.NewTapeMachine(g.G)
	defer vm.Close()
	obs := map[string]rangeObserver{}
	for name, q := range nq.Qs {
		o, err := newRangeObserver(p.state[name].spec, q)
		if err != nil {
			return nil, fmt.Errorf("qat: site %q: %w", name, err)
		}
		if o != nil {
			obs[name] = o
		}
	}
	for b := 0; b < batches; b++ {
		if err := task.Feed(g, BatchID{Calib: true, Index: int64(b), Seed: seed}); err != nil {
			return nil, fmt.Errorf("qat: calibration batch %d: %w", b, err)
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			return nil, fmt.Errorf("qat: calibration batch %d: %w", b, opError(err))
		}
		for name, o := range obs {
			if p.state[name].site.Kind == graph.SiteWeight && b > 0 {
				continue // the folded weight is the same in every evaluation batch
			}
			v, err := inputFloats(nq.Qs[name])
			if err == nil {
				err = o.Observe(v)
			}
			if err != nil {
				return nil, fmt.Errorf("qat: calibration batch %d: site %q: %w", b, name, err)
			}
		}
	}
	for name, o := range obs {
		lo, hi, err := o.Range()
		if err == nil {
			err = nq.Qs[name].SetRange(lo, hi) // checks the range gives valid parameters
		}
		if err != nil {
			return nil, fmt.Errorf("qat: calibration: site %q: %w", name, err)
		}
	}
	return nq, nil
}

// Evaluate returns the accuracy and mean loss of m on d: float when p is nil, else fake-quantized
// with p's current (frozen) quantizers, BN folded with running statistics.
func Evaluate(m *graph.Model, p *Prepared, d Dataset, batch int) (acc, loss float64, err error) {
	t, err := NewTrainer(Classify(m, nil), p, Config{EvalBatch: batch})
	if err != nil {
		return 0, 0, err
	}
	defer t.Close()
	r, err := t.Evaluate(Images{Data: d})
	return r.Acc, r.Loss, err
}
