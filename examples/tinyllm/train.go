package main

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// trainable is one tensor the optimiser updates: a model parameter or a quantizer's learnable
// (LSQ log-scale / offset).
type trainable struct {
	name  string
	value []float32
	grad  *G.Node
	decay bool
	m, v  []float32
}

// adamW is Adam with decoupled weight decay (Loshchilov and Hutter 2019) and global-norm clipping.
type adamW struct {
	beta1, beta2, eps, wd, clip float64
	t                           int
}

func (a *adamW) step(ts []*trainable, lr float64) (gnorm float64, err error) {
	var ss float64
	for _, p := range ts {
		for _, g := range p.grad.Value().Data().([]float32) {
			ss += float64(g) * float64(g)
		}
	}
	gnorm = math.Sqrt(ss)
	if math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
		return gnorm, errors.New("non-finite gradient")
	}
	scale := 1.0
	if a.clip > 0 && gnorm > a.clip {
		scale = a.clip / gnorm
	}
	a.t++
	c1 := 1 - math.Pow(a.beta1, float64(a.t))
	c2 := 1 - math.Pow(a.beta2, float64(a.t))
	for _, p := range ts {
		g := p.grad.Value().Data().([]float32)
		if p.m == nil {
			p.m, p.v = make([]float32, len(g)), make([]float32, len(g))
		}
		for i, gi := range g {
			gs := float64(gi) * scale
			m := a.beta1*float64(p.m[i]) + (1-a.beta1)*gs
			v := a.beta2*float64(p.v[i]) + (1-a.beta2)*gs*gs
			p.m[i], p.v[i] = float32(m), float32(v)
			w := float64(p.value[i])
			if p.decay {
				w -= lr * a.wd * w
			}
			w -= lr * (m / c1) / (math.Sqrt(v/c2) + a.eps)
			p.value[i] = float32(w)
		}
	}
	return gnorm, nil
}

// lrAt is linear warm-up then cosine decay to 10% of the peak.
func lrAt(peak float64, step, total, warmup int) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	p := float64(step-warmup) / float64(max(total-warmup, 1))
	return peak * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*p)))
}

// trainRun is one training session of an LM (float or fake-quantized).
type trainRun struct {
	name    string
	lm      *graph.LM
	net     *graph.LMNet
	vm      G.VM
	quant   *lmQuant
	params  []*trainable
	opt     adamW
	rots    *learnedRotations // learned rotations (CayleySGD), or nil
	spinLR  float64           // their peak learning rate
	sampler *text.Sampler
	log     *logrus.Logger
}

func newTrainRun(name string, lm *graph.LM, q *lmQuant, rotate graph.RotateFunc, rots *learnedRotations, batch int, s *text.Sampler, wd float64, log *logrus.Logger) (*trainRun, error) {
	o := graph.LMOptions{Batch: batch, Rotate: rotate, RotateSeed: rotateSeed}
	if rots != nil {
		o.Rotate = rots.rotate
	}
	if q != nil {
		o.Quant = q
	}
	net, err := lm.Build(o)
	if err != nil {
		return nil, err
	}
	wrt := net.ParamNodes()
	var ts []*trainable
	for _, p := range lm.Params() {
		ts = append(ts, &trainable{name: p.Name, value: p.Value.Data().([]float32), decay: p.Role == graph.RoleWeight && p.Layer != "tok_emb"})
	}
	if q != nil {
		for _, name := range q.order {
			for _, l := range q.qs[name].Learnables() {
				wrt = append(wrt, l)
				ts = append(ts, &trainable{name: l.Name(), value: l.Value().Data().([]float32)})
			}
		}
	}
	if rots != nil {
		wrt = append(wrt, rots.nodes()...) // CayleySGD reads their gradients
	}
	grads, err := G.Grad(net.Loss, wrt...)
	if err != nil {
		return nil, fmt.Errorf("gradients: %w", err)
	}
	for i := range ts {
		ts[i].grad = grads[i]
	}
	r := &trainRun{name: name, lm: lm, net: net, quant: q, params: ts, sampler: s, log: log, rots: rots,
		opt: adamW{beta1: 0.9, beta2: 0.95, eps: 1e-8, wd: wd, clip: 1}}
	r.vm = G.NewTapeMachine(net.G)
	return r, nil
}

func (r *trainRun) close() { r.vm.Close() }

// forward runs one batch (forward and backward) and returns the loss.
func (r *trainRun) forward(x, y []int) (float64, error) {
	if err := r.net.SetBatch(x, y); err != nil {
		return 0, err
	}
	r.vm.Reset()
	if err := r.vm.RunAll(); err != nil {
		return 0, err
	}
	return float64(r.net.Loss.Value().Data().(float32)), nil
}

// fit trains for steps batches starting at sampler step first, logging a progress line with
// rate and ETA every few seconds.
func (r *trainRun) fit(steps, first int, peakLR float64, warmup int) (time.Duration, error) {
	start := time.Now()
	last := start
	tokens := r.sampler.Batch * r.sampler.Ctx
	var ema float64
	for s := 0; s < steps; s++ {
		x, y := r.sampler.Next(int64(first + s))
		loss, err := r.forward(x, y)
		if err != nil {
			return 0, fmt.Errorf("%s step %d: %w", r.name, s, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, fmt.Errorf("%s step %d: loss is %v", r.name, s, loss)
		}
		lr := lrAt(peakLR, s, steps, warmup)
		gn, err := r.opt.step(r.params, lr)
		if err != nil {
			return 0, fmt.Errorf("%s step %d: %w", r.name, s, err)
		}
		if r.rots != nil {
			if err := r.rots.step(r.spinLR * lr / peakLR); err != nil {
				return 0, fmt.Errorf("%s step %d: %w", r.name, s, err)
			}
		}
		if s == 0 {
			ema = loss
		}
		ema = 0.95*ema + 0.05*loss
		if now := time.Now(); now.Sub(last) > 5*time.Second || s == steps-1 {
			last = now
			el := now.Sub(start)
			rate := float64(s+1) / el.Seconds()
			eta := time.Duration(float64(steps-s-1) / rate * float64(time.Second))
			r.log.WithFields(logrus.Fields{
				"run": r.name, "step": fmt.Sprintf("%d/%d", s+1, steps), "loss": fmt.Sprintf("%.4f", ema),
				"lr": fmt.Sprintf("%.2e", lr), "gnorm": fmt.Sprintf("%.2f", gn),
				"rate": fmt.Sprintf("%.2f step/s %.0f tok/s", rate, rate*float64(tokens)),
				"eta":  eta.Round(time.Second).String(),
			}).Info("training")
		}
	}
	return time.Since(start), nil
}

// evaluator runs a forward-only graph over fixed validation windows.
type evaluator struct {
	net   *graph.LMNet
	vm    G.VM
	quant *lmQuant
}

func newEvaluator(lm *graph.LM, q *lmQuant, rotate graph.RotateFunc, batch int) (*evaluator, error) {
	o := graph.LMOptions{Batch: batch, Rotate: rotate, RotateSeed: rotateSeed}
	if q != nil {
		o.Quant = q
	}
	net, err := lm.Build(o)
	if err != nil {
		return nil, err
	}
	return &evaluator{net: net, vm: G.NewTapeMachine(net.G), quant: q}, nil
}

func (e *evaluator) close() { e.vm.Close() }

func (e *evaluator) run(x, y []int) (float64, error) {
	if err := e.net.SetBatch(x, y); err != nil {
		return 0, err
	}
	e.vm.Reset()
	if err := e.vm.RunAll(); err != nil {
		return 0, err
	}
	return float64(e.net.Loss.Value().Data().(float32)), nil
}

// loss returns the mean next-token cross-entropy (nats per token) over the windows.
func (e *evaluator) loss(xs, ys [][]int) (float64, error) {
	var sum float64
	for i := range xs {
		l, err := e.run(xs[i], ys[i])
		if err != nil {
			return 0, err
		}
		sum += l
	}
	return sum / float64(len(xs)), nil
}

// cloneLM returns a new LM with the same configuration and a copy of src's parameters.
func cloneLM(src *graph.LM) (*graph.LM, error) {
	dst, err := graph.NewLM(src.Name, src.Config, tensor.Float32, 0)
	if err != nil {
		return nil, err
	}
	var c graph.Checkpoint
	src.SaveState(&c)
	return dst, dst.LoadState(&c)
}

// hadamard is the rotation the example uses: fakequant's randomised Hadamard transform.
func hadamard(x *G.Node, seed uint64) (*G.Node, error) {
	r, err := fakequant.Hadamard(x, seed)
	if err != nil {
		return nil, err
	}
	return r.Out, nil
}

const rotateSeed = 0x51ab
