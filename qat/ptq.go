package qat

import (
	"fmt"
	"math/rand/v2"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
)

// ObservedTwin returns c with every quantized site switched to an observer: weights track their
// current per-channel min/max (momentum 1), activations keep the running min/max over the
// calibration batches (momentum 0; with ObserverEMA their EMA with the spec's momentum), in two
// passes (no SinglePass). Bit widths, schemes, granularity, observer choices and overrides are
// kept; the name gets ObservedSuffix.
func ObservedTwin(c QConfig) QConfig {
	conv := func(s Spec, weight bool) Spec {
		s.Method, s.LearnOffset, s.SinglePass = fakequant.Observed, false, false
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
	out := QConfig{Name: c.Name + ObservedSuffix, Weight: conv(c.Weight, true), Act: conv(c.Act, false)}
	if len(c.Overrides) > 0 {
		out.Overrides = map[string]Override{}
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

// Calibrate is post-training quantization: it prepares m with the observed twin of c, runs
// batches mini-batches of train (a seeded random sample) through the evaluation graph (running
// BN statistics, BN folded as export folds it) so the observers record ranges, then freezes them.
// Sites whose Spec.Observer is ObserverPercentile or ObserverMSE take their range from that
// observer on a sample of the values seen in those batches (weights: the folded weight).
// No parameter changes.
func Calibrate(m *graph.Model, c QConfig, train Dataset, batches, batchSize int, seed uint64) (*Prepared, error) {
	p, err := Prepare(m, ObservedTwin(c))
	if err != nil {
		return nil, err
	}
	if _, err := runObservers(p, train, batches, batchSize, seed); err != nil {
		return nil, err
	}
	p.FreezeObservers(true)
	return p, nil
}

func runObservers(p *Prepared, train Dataset, batches, B int, seed uint64) (*NetQuant, error) {
	if batches < 1 || B < 1 {
		return nil, fmt.Errorf("qat: calibration with %d batches of %d", batches, B)
	}
	if p.Model == nil {
		return nil, fmt.Errorf("qat: calibration on image data needs a layer model (*graph.Model), not a %T (use CalibrateLM)", p.Net)
	}
	nq := p.Quantizer()
	n, err := p.Model.Build(graph.Options{Batch: B, Quant: nq, FoldBN: true})
	if err != nil {
		return nil, err
	}
	vm := newVM(n)
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
	perm := rand.New(rand.NewPCG(seed, 0xca11b)).Perm(train.Len())
	x := n.XVal.Data().([]float32)
	idx := make([]int, B)
	y := make([]int, B)
	for b := 0; b < batches; b++ {
		for i := range idx {
			idx[i] = perm[(b*B+i)%len(perm)]
		}
		train.Batch(idx, x, y)
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

// observeRanges runs an observed twin of p's config for batches and returns the per-site ranges.
func observeRanges(m *graph.Model, p *Prepared, train Dataset, batches, B int, seed uint64) (map[string][2][]float64, error) {
	tw, err := Prepare(m, ObservedTwin(p.Config))
	if err != nil {
		return nil, err
	}
	if _, err := runObservers(tw, train, batches, B, seed); err != nil {
		return nil, err
	}
	out := map[string][2][]float64{}
	for name, st := range tw.state {
		if lo, hi, ok := st.fq.Observed(); ok {
			out[name] = [2][]float64{lo, hi}
		}
	}
	return out, nil
}

// Evaluate returns the accuracy and mean loss of m on d: float when p is nil, else fake-quantized
// with p's current (frozen) quantizers, BN folded with running statistics.
func Evaluate(m *graph.Model, p *Prepared, d Dataset, batch int) (acc, loss float64, err error) {
	t, err := NewTrainer(m, p, Config{EvalBatch: batch})
	if err != nil {
		return 0, 0, err
	}
	defer t.Close()
	return t.Evaluate(d)
}
