package qat

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
)

// TokenBatches returns the ids and next-token targets (Batch*Ctx each, row-major [Batch][Ctx])
// of training batch number step; data/text.Sampler.Next is one.
type TokenBatches func(step int64) (ids, targets []int)

// StepHook trains extra tensors of an LM graph alongside the parameters, e.g. learned rotations
// (SpinQuant) created by a graph.RotateFunc. Nodes is called once the graph is built; the
// trainer differentiates the loss with respect to them, and after each optimizer step calls
// Step with the ratio of the step's learning rate to the peak one.
type StepHook interface {
	Nodes() G.Nodes
	Step(lrFactor float64) error
}

// LMTrainer trains a graph.LM (float, or fake-quantized through a Prepared of it) on next-token
// prediction with the optimizer, clipping, schedule and loss of Config: BatchSize is the number
// of sequences per batch, LR/MinLR/Schedule/Warmup/Beta2/ClipNorm/WeightDecay as for Trainer.
// Weight decay applies to the weights of the fusion groups (the linears), not to the embedding
// or the norm gains. The LR schedule spans one Fit call. Quantizer state lives in Prep (see the
// package doc on ownership).
type LMTrainer struct {
	LM   *graph.LM
	Prep *Prepared // nil: float training
	Cfg  Config
	// Opts are the build options of the training and evaluation graphs (rotations); Batch and
	// Quant are set by the trainer.
	Opts graph.LMOptions
	Hook StepHook // optional
	Step int64    // optimizer steps taken

	opt        *optimizer
	train, ev  *lmRun
	decay      map[string]bool
	tensorsFor map[string][]float32
}

type lmRun struct {
	net   *graph.LMNet
	vm    G.VM
	loss  *G.Node
	nq    *NetQuant
	names []string
	grads []*G.Node
}

// NewLMTrainer returns a trainer of lm (float when p is nil; otherwise p must prepare lm).
func NewLMTrainer(lm *graph.LM, p *Prepared, cfg Config, opts graph.LMOptions) (*LMTrainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	if p != nil && p.Net != graph.Network(lm) {
		return nil, fmt.Errorf("qat: the Prepared model is not this LM")
	}
	opt, err := newOptimizerClip(cfg.Optimizer, cfg.Momentum, cfg.Beta2, cfg.WeightDecay, cfg.ClipNorm)
	if err != nil {
		return nil, err
	}
	t := &LMTrainer{LM: lm, Prep: p, Cfg: cfg, Opts: opts, opt: opt, decay: map[string]bool{}}
	for _, g := range lm.Groups() {
		if g.Weighted() {
			t.decay["param/"+g.Op+"."+string(graph.RoleWeight)] = true
		}
	}
	return t, nil
}

// Close releases the graphs' machines.
func (t *LMTrainer) Close() {
	for _, r := range []*lmRun{t.train, t.ev} {
		if r != nil {
			r.vm.Close()
		}
	}
	t.train, t.ev = nil, nil
}

// build makes a graph: train adds the gradients, eval freezes the activation observers.
func (t *LMTrainer) build(train, eval bool) (*lmRun, error) {
	o := t.Opts
	o.Batch = t.Cfg.BatchSize
	r := &lmRun{}
	if t.Prep != nil {
		r.nq = t.Prep.Quantizer()
		if eval {
			r.nq = t.Prep.EvalQuantizer()
		}
		o.Quant = r.nq
	}
	n, err := t.LM.Build(o)
	if err != nil {
		return nil, err
	}
	r.net = n
	if r.loss, err = t.Cfg.loss()(n.Logits, n.Target); err != nil {
		return nil, err
	}
	if train {
		var wrt G.Nodes
		for _, p := range t.LM.Params() {
			r.names = append(r.names, "param/"+p.Name)
			wrt = append(wrt, n.Params[p.Name])
		}
		if r.nq != nil {
			for _, s := range t.Prep.Sites {
				q, ok := r.nq.Qs[s.Name]
				if !ok {
					continue
				}
				for _, l := range []struct {
					suf string
					n   *G.Node
				}{{".log_scale", q.LogScale}, {".offset", q.Offset}, {".alpha", q.Alpha}} {
					if l.n != nil {
						r.names = append(r.names, "quant/"+s.Name+l.suf)
						wrt = append(wrt, l.n)
					}
				}
			}
		}
		nParams := len(wrt)
		if t.Hook != nil {
			wrt = append(wrt, t.Hook.Nodes()...)
		}
		gs, err := G.Grad(r.loss, wrt...)
		if err != nil {
			return nil, fmt.Errorf("qat: gradients: %w", err)
		}
		r.grads = gs[:nParams]
	}
	r.vm = G.NewTapeMachine(n.G)
	return r, nil
}

func (r *lmRun) run(ids, targets []int) (float64, error) {
	if err := r.net.SetBatch(ids, targets); err != nil {
		return 0, err
	}
	r.vm.Reset()
	if err := r.vm.RunAll(); err != nil {
		return 0, opError(err)
	}
	return scalar(r.loss), nil
}

func scalar(n *G.Node) float64 {
	switch v := n.Value().Data().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}

func (t *LMTrainer) ensureTrain() error {
	if t.train != nil {
		return nil
	}
	var err error
	if t.train, err = t.build(true, false); err != nil {
		return err
	}
	t.tensorsFor = map[string][]float32{}
	for _, p := range t.LM.Params() {
		t.tensorsFor["param/"+p.Name] = f32s(p.Value)
	}
	if t.Prep != nil {
		for _, l := range t.Prep.Learnables() {
			t.tensorsFor["quant/"+l.Name] = f32s(l.Value)
		}
	}
	return nil
}

// InitQuantizers starts every quantizer of a prepared LM from one calibration batch: the graph
// runs once with fake quantization off, then learned quantizers (LSQ, LSQ+) take the min/max
// range of their input (round-to-nearest with min/max ranges, per channel or group for weights)
// and observers take the batch as their first observation.
func (t *LMTrainer) InitQuantizers(ids, targets []int) error {
	if t.Prep == nil {
		return nil
	}
	if err := t.ensureTrain(); err != nil {
		return err
	}
	r := t.train
	if err := t.Prep.whileDisabled(func() error { _, err := r.run(ids, targets); return err }); err != nil {
		return err
	}
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
	// learnables may have been created by this first graph
	for _, l := range t.Prep.Learnables() {
		t.tensorsFor["quant/"+l.Name] = f32s(l.Value)
	}
	return nil
}

// Fit takes steps optimizer steps on the batches first, first+1, ... of data; the learning
// rate schedule spans these steps. It logs progress (smoothed loss, learning rate, gradient norm,
// rate, ETA) every few seconds and returns the time spent.
func (t *LMTrainer) Fit(data TokenBatches, steps, first int64) (time.Duration, error) {
	if steps < 1 {
		return 0, fmt.Errorf("qat: LM training for %d steps", steps)
	}
	if err := t.ensureTrain(); err != nil {
		return 0, err
	}
	r := t.train
	start := time.Now()
	last := start
	var ema float64
	gs := make([][]float32, len(r.grads))
	for s := int64(0); s < steps; s++ {
		ids, tg := data(first + s)
		loss, err := r.run(ids, tg)
		if err != nil {
			return 0, fmt.Errorf("qat: LM step %d: %w", s, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, fmt.Errorf("%w: loss %v at LM step %d", ErrNonFinite, loss, s)
		}
		for i, g := range r.grads {
			gs[i] = g.Value().Data().([]float32)
		}
		gn := GlobalNorm(gs...)
		if math.IsNaN(gn) || math.IsInf(gn, 0) {
			return 0, fmt.Errorf("%w: gradient norm %v at LM step %d", ErrNonFinite, gn, s)
		}
		t.opt.beginStep(nil)
		t.opt.scale = ClipFactor(gn, t.opt.clip)
		lr := lrAt(&t.Cfg, s, steps, steps)
		for i, name := range r.names {
			t.opt.update(name, t.tensorsFor[name], gs[i], lr, t.decay[name])
		}
		if t.Hook != nil {
			if err := t.Hook.Step(lr / t.Cfg.LR); err != nil {
				return 0, fmt.Errorf("qat: LM step %d: %w", s, err)
			}
		}
		t.Step++
		if s == 0 {
			ema = loss
		}
		ema = 0.95*ema + 0.05*loss
		if now := time.Now(); now.Sub(last) > 5*time.Second || s == steps-1 {
			last = now
			el := now.Sub(start)
			rate := float64(s+1) / el.Seconds()
			eta := time.Duration(float64(steps-s-1) / rate * float64(time.Second))
			t.Cfg.Logger.WithFields(logrus.Fields{
				"step": fmt.Sprintf("%d/%d", s+1, steps), "loss": fmt.Sprintf("%.4f", ema),
				"lr": fmt.Sprintf("%.2e", lr), "gnorm": fmt.Sprintf("%.2f", gn),
				"rate": fmt.Sprintf("%.2f step/s %.0f tok/s", rate, rate*float64(len(ids))),
				"eta":  eta.Round(time.Second).String(),
			}).Info("training")
		}
	}
	return time.Since(start), nil
}

// Evaluate returns the mean loss over the batches (ids[i], targets[i]) with the evaluation graph:
// fake-quantized with the Prepared state when prepared, activation observers frozen.
func (t *LMTrainer) Evaluate(ids, targets [][]int) (float64, error) {
	if len(ids) == 0 || len(ids) != len(targets) {
		return 0, fmt.Errorf("qat: LM evaluation on %d id and %d target batches", len(ids), len(targets))
	}
	if t.ev == nil {
		var err error
		if t.ev, err = t.build(false, true); err != nil {
			return 0, err
		}
	}
	var sum float64
	for i := range ids {
		l, err := t.ev.run(ids[i], targets[i])
		if err != nil {
			return 0, err
		}
		sum += l
	}
	return sum / float64(len(ids)), nil
}

// Calibrate runs the evaluation graph over the batches with the observers of a prepared LM
// tracking (post-training quantization), then freezes them.
func (t *LMTrainer) Calibrate(ids, targets [][]int) error {
	if t.Prep == nil {
		return fmt.Errorf("qat: calibrating a float LM")
	}
	r, err := t.build(false, false)
	if err != nil {
		return err
	}
	defer r.vm.Close()
	for i := range ids {
		if _, err := r.run(ids[i], targets[i]); err != nil {
			return err
		}
	}
	t.Prep.FreezeObservers(true)
	return nil
}

// SaveCheckpoint writes Checkpoint(meta) to path atomically.
func (t *LMTrainer) SaveCheckpoint(path string, meta map[string]string) error {
	return graph.SaveCheckpoint(path, t.Checkpoint(meta))
}

// Checkpoint returns the LM's parameters and architecture, the quantizer state (when prepared),
// the optimizer state, the step and the metadata meta as a checkpoint, for a caller that adds
// tensors of its own before saving it.
func (t *LMTrainer) Checkpoint(meta map[string]string) *graph.Checkpoint {
	c := &graph.Checkpoint{Step: t.Step, Seed: t.Cfg.Seed, Meta: map[string]string{}}
	for k, v := range meta {
		c.Meta[k] = v
	}
	t.LM.SaveState(c)
	if t.Prep != nil {
		t.Prep.SaveState(c)
	}
	t.opt.save(c)
	return c
}

// LoadCheckpoint restores what SaveCheckpoint wrote (parameters, quantizer state, optimizer
// state, step); the graphs are rebuilt.
func (t *LMTrainer) LoadCheckpoint(path string) error {
	c, err := graph.LoadCheckpoint(path)
	if err != nil {
		return err
	}
	if a, err := graph.ArchOf(c); err == nil && !reflect.DeepEqual(a, t.LM.Arch()) {
		return fmt.Errorf("qat: checkpoint %s holds another architecture (%s %q %+v)", path, a.Type, a.Name, a.LM)
	}
	if err := t.LM.LoadState(c); err != nil {
		return err
	}
	if t.Prep != nil {
		if err := t.Prep.LoadState(c); err != nil {
			return err
		}
	}
	if _, ok := c.Meta["opt/t"]; ok { // a checkpoint without optimizer state restarts the moments
		if err := t.opt.load(c); err != nil {
			return err
		}
	}
	t.Step = c.Step
	t.Close()
	return nil
}

// Forward runs the evaluation graph (see Evaluate) on one batch and returns it with the batch's
// loss: its Logits are valid until the next run (CollectLMStats gathers activation statistics).
func (t *LMTrainer) Forward(ids, targets []int) (*graph.LMNet, float64, error) {
	if _, err := t.Evaluate([][]int{ids}, [][]int{targets}); err != nil {
		return nil, 0, err
	}
	return t.ev.net, scalar(t.ev.loss), nil
}
