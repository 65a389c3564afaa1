package qat

import (
	"fmt"
	"math"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// Optimizer kinds.
const (
	Adam = "adam"
	SGD  = "sgd"
)

// optimizer updates named float32 tensors in place from their gradients. State is kept per name so
// it can be checkpointed ("opt/m/<name>", "opt/v/<name>") and restored bit-exactly.
type optimizer struct {
	kind        string
	momentum    float64 // SGD momentum, Adam beta1
	beta2, eps  float64
	weightDecay float64
	clip        float64 // global gradient norm limit (0: none)
	scale       float64 // gradient factor of the current step (clipping), 1 without
	t           int64   // number of updates applied (Adam bias correction)
	m, v        map[string][]float32
}

func newOptimizer(kind string, momentum, wd float64) (*optimizer, error) {
	return newOptimizerClip(kind, momentum, 0.999, wd, 0)
}

// newOptimizerClip is newOptimizer with Adam's beta2 (0 means 0.999) and a global gradient norm
// limit clip (0: none).
func newOptimizerClip(kind string, momentum, beta2, wd, clip float64) (*optimizer, error) {
	if beta2 == 0 {
		beta2 = 0.999
	}
	if beta2 < 0 || beta2 >= 1 || clip < 0 || wd < 0 {
		return nil, fmt.Errorf("qat: optimizer beta2 %v (want [0,1)), clip %v, weight decay %v (want >= 0)", beta2, clip, wd)
	}
	kind = strings.ToLower(kind)
	switch kind {
	case Adam:
		if momentum == 0 {
			momentum = 0.9
		}
	case SGD:
	default:
		return nil, fmt.Errorf("qat: unknown optimizer %q (adam, sgd)", kind)
	}
	return &optimizer{kind: kind, momentum: momentum, beta2: beta2, eps: 1e-8, weightDecay: wd, clip: clip, scale: 1,
		m: map[string][]float32{}, v: map[string][]float32{}}, nil
}

// GlobalNorm returns the L2 norm of all gradients together, sqrt(sum_i g_i^2).
func GlobalNorm(grads ...[]float32) float64 {
	var ss float64
	for _, g := range grads {
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
	}
	return math.Sqrt(ss)
}

// ClipFactor returns the factor that scales gradients of global norm gnorm to at most limit
// (Pascanu et al. 2013): limit/gnorm above the limit, else 1 (also for limit 0: no clipping).
func ClipFactor(gnorm, limit float64) float64 {
	if limit > 0 && gnorm > limit {
		return limit / gnorm
	}
	return 1
}

// beginStep starts an optimizer step over the given gradients: it counts the step (Adam's bias
// correction) and sets the clipping factor from their global norm, which it returns.
func (o *optimizer) beginStep(grads [][]float32) float64 {
	o.t++
	o.scale = 1
	if o.clip > 0 {
		gn := GlobalNorm(grads...)
		o.scale = ClipFactor(gn, o.clip)
		return gn
	}
	return 0
}

// update applies one step with learning rate lr to w given gradient g. decay says whether weight
// decay applies (conv/linear weights only).
func (o *optimizer) update(name string, w, g []float32, lr float64, decay bool) {
	m, ok := o.m[name]
	if !ok {
		m = make([]float32, len(w))
		o.m[name] = m
	}
	wd := 0.0
	if decay {
		wd = o.weightDecay
	}
	sc := o.scale
	if sc == 0 {
		sc = 1
	}
	switch o.kind {
	case SGD:
		for i := range w {
			gi := float64(g[i])*sc + wd*float64(w[i])
			mi := o.momentum*float64(m[i]) + gi
			m[i] = float32(mi)
			w[i] = float32(float64(w[i]) - lr*mi)
		}
	case Adam:
		v, ok := o.v[name]
		if !ok {
			v = make([]float32, len(w))
			o.v[name] = v
		}
		b1, b2 := o.momentum, o.beta2
		c1 := 1 - math.Pow(b1, float64(o.t))
		c2 := 1 - math.Pow(b2, float64(o.t))
		for i := range w {
			gi := float64(g[i]) * sc
			mi := b1*float64(m[i]) + (1-b1)*gi
			vi := b2*float64(v[i]) + (1-b2)*gi*gi
			m[i], v[i] = float32(mi), float32(vi)
			// decoupled weight decay (AdamW)
			w[i] = float32(float64(w[i]) - lr*(mi/c1/(math.Sqrt(vi/c2)+o.eps)+wd*float64(w[i])))
		}
	}
}

func (o *optimizer) save(c *graph.Checkpoint) {
	for n, m := range o.m {
		c.PutFloat32s("opt/m/"+n, m)
	}
	for n, v := range o.v {
		c.PutFloat32s("opt/v/"+n, v)
	}
	if c.Meta == nil {
		c.Meta = map[string]string{}
	}
	c.Meta["opt/t"] = fmt.Sprint(o.t)
}

func (o *optimizer) load(c *graph.Checkpoint) error {
	o.m, o.v = map[string][]float32{}, map[string][]float32{}
	for name, t := range c.Tensors {
		d, ok := t.Data().([]float32)
		switch {
		case strings.HasPrefix(name, "opt/m/") && ok:
			o.m[strings.TrimPrefix(name, "opt/m/")] = append([]float32(nil), d...)
		case strings.HasPrefix(name, "opt/v/") && ok:
			o.v[strings.TrimPrefix(name, "opt/v/")] = append([]float32(nil), d...)
		}
	}
	if _, err := fmt.Sscan(c.Meta["opt/t"], &o.t); err != nil {
		return fmt.Errorf("qat: checkpoint lacks optimizer step: %w", err)
	}
	return nil
}

// LR schedules.
const (
	ConstLR  = "const"
	CosineLR = "cosine"
	StepLR   = "step"
	// WarmupCosineLR rises linearly over Config.Warmup steps to LR, then decays along a cosine
	// to MinLR at the last step (the usual transformer schedule).
	WarmupCosineLR = "warmup-cosine"
)

// WarmupCosine is the WarmupCosineLR schedule: peak*(step+1)/warmup during the warm-up, then
// min + (peak-min)*(1+cos(pi*p))/2 with p = (step-warmup)/(total-warmup).
func WarmupCosine(peak, min float64, step, total, warmup int64) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	p := float64(step-warmup) / float64(max(total-warmup, 1))
	return min + (peak-min)*0.5*(1+math.Cos(math.Pi*p))
}

// lrAt returns the learning rate at step (0-based) of total steps.
func lrAt(c *Config, step, total int64, stepsPerEpoch int64) float64 {
	switch c.Schedule {
	case WarmupCosineLR:
		return WarmupCosine(c.LR, c.MinLR, step, total, c.Warmup)
	case CosineLR:
		if total <= 1 {
			return c.LR
		}
		return c.MinLR + 0.5*(c.LR-c.MinLR)*(1+math.Cos(math.Pi*float64(step)/float64(total)))
	case StepLR:
		every := int64(c.StepEpochs) * stepsPerEpoch
		if every <= 0 {
			return c.LR
		}
		return c.LR * math.Pow(c.StepGamma, float64(step/every))
	}
	return c.LR
}

func f32s(t *tensor.Dense) []float32 { return t.Data().([]float32) }
