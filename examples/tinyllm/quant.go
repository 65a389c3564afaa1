package main

import (
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// qspec is a quantization recipe for the LM's sites.
type qspec struct {
	wbits, abits int
	group        int     // weight group size along the input dimension; 0 = per output channel
	headBits     int     // bits of the output projection's weight (llama.cpp keeps it wider)
	learnW       bool    // LSQ weight scales (QAT); else min/max of the current weights
	learnA       bool    // LSQ+ activation scale and offset (QAT); else an observer
	actMomentum  float64 // activation observer: 0 running min/max, m in (0,1] EMA
}

func (s qspec) bits() string {
	b := fmt.Sprintf("W%dA%d", s.wbits, s.abits)
	if s.group > 0 && s.wbits < 8 {
		b += fmt.Sprintf(" g%d", s.group)
	}
	return b
}

// lmQuant implements graph.Quantizer with fakequant nodes: weights symmetric narrow-range per
// output channel or per group of `group` inputs (llama.cpp block order), activations asymmetric
// signed per tensor with an observer.
type lmQuant struct {
	spec     qspec
	observed bool // every quantizer Observed (evaluation / PTQ graphs)
	qs       map[string]*fakequant.Quantizer
	order    []string
}

func newQuant(s qspec, observed bool) *lmQuant {
	return &lmQuant{spec: s, observed: observed, qs: map[string]*fakequant.Quantizer{}}
}

func (q *lmQuant) config(s graph.Site) fakequant.Config {
	if s.Kind == graph.SiteWeight {
		c := fakequant.Config{Name: s.Name, Bits: q.spec.wbits, Scheme: fakequant.SymmetricNarrow,
			Granularity: fakequant.PerChannel, Axis: 0, Method: fakequant.Observed, Momentum: 1}
		if s.Name == "head.weight" && q.spec.headBits > 0 {
			c.Bits = q.spec.headBits
		}
		if g := q.spec.group; g > 0 && s.Shape[1]%g == 0 && c.Bits < 8 {
			c.Granularity, c.Axis, c.GroupSize = fakequant.PerGroup, 1, g
		}
		if q.spec.learnW && !q.observed {
			c.Method, c.Momentum = fakequant.LSQ, 0
		}
		return c
	}
	c := fakequant.Config{Name: s.Name, Bits: q.spec.abits, Scheme: fakequant.AsymmetricSigned,
		Granularity: fakequant.PerTensor, Method: fakequant.Observed, Momentum: q.spec.actMomentum}
	if q.spec.learnA && !q.observed {
		c.Method, c.Momentum, c.LearnOffset = fakequant.LSQ, 0, true
	}
	return c
}

// Quantize implements graph.Quantizer.
func (q *lmQuant) Quantize(s graph.Site, x *G.Node) (*G.Node, error) {
	fq, err := fakequant.New(x.Graph(), x, q.config(s))
	if err != nil {
		return nil, err
	}
	q.qs[s.Name] = fq
	q.order = append(q.order, s.Name)
	return fq.Out, nil
}

func (q *lmQuant) setEnabled(on bool) {
	for _, fq := range q.qs {
		fq.SetEnabled(on)
	}
}

func (q *lmQuant) freeze() {
	for _, fq := range q.qs {
		fq.Freeze()
	}
}

// initLSQ sets every LSQ quantizer's scale (and offset) from the min/max of its input's current
// value (run a forward pass with the quantizers disabled first): LSQ then starts from
// round-to-nearest with min/max ranges.
func (q *lmQuant) initLSQ() error {
	for _, name := range q.order {
		fq := q.qs[name]
		if fq.Config().Method != fakequant.LSQ {
			continue
		}
		in := fq.In.Value()
		if in == nil {
			return fmt.Errorf("%s: input has no value: run a forward pass with the quantizers disabled first", name)
		}
		v32, ok := in.Data().([]float32)
		if !ok {
			return fmt.Errorf("%s: input has no float32 value", name)
		}
		v := make([]float64, len(v32))
		for i, x := range v32 {
			v[i] = float64(x)
		}
		o := fakequant.NewMinMaxObserver(fq.Layout(), 0)
		if err := o.Observe(v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		lo, hi, err := o.Range()
		if err != nil {
			return err
		}
		if err := fq.SetRange(lo, hi); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// copyParams fixes every quantizer of q (Observed) to the parameters src uses now.
func (q *lmQuant) copyParams(src *lmQuant) error {
	for _, name := range q.order {
		s, ok := src.qs[name]
		if !ok {
			return fmt.Errorf("site %s missing in the source", name)
		}
		ps, err := s.Params()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := q.qs[name].SetParams(ps); err != nil {
			return err
		}
	}
	return nil
}

// save stores the quantizer parameters in c: "quant/<site>.scale" (float32) and
// "quant/<site>.zero_point" (the int32 zero points as float32, exact below 2^24) per slice, in
// the slice order of fakequant's layout, plus "quant/<site>.bits" in Meta.
func (q *lmQuant) save(c *graph.Checkpoint) error {
	if c.Meta == nil {
		c.Meta = map[string]string{}
	}
	for _, name := range q.order {
		fq := q.qs[name]
		ps, err := fq.Params()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sc, zp := make([]float32, len(ps)), make([]float32, len(ps))
		for i, p := range ps {
			sc[i], zp[i] = p.Scale, float32(p.ZeroPoint)
		}
		c.PutFloat32s("quant/"+name+".scale", sc)
		c.PutFloat32s("quant/"+name+".zero_point", zp)
		c.Meta["quant/"+name+".bits"] = fmt.Sprint(fq.Bits())
		c.Meta["quant/"+name+".granularity"] = fmt.Sprintf("%v axis %d group %d", fq.Config().Granularity, fq.Config().Axis, fq.Config().GroupSize)
	}
	return nil
}
