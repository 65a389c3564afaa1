package export

import (
	"fmt"
	"math"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// lmActSite maps the runtime op names whose output is a quantizer site of graph.LM to that site:
// the norms feed the linears, the attention feeds wo, the SwiGLU (or, with an online Hadamard, the
// Hadamard) feeds w2.
func lmActSite(op string, hadamard bool) (string, bool) {
	switch {
	case op == "norm":
		return "head.in", true
	case strings.HasSuffix(op, ".attn_norm"):
		return strings.TrimSuffix(op, "_norm") + ".in", true
	case strings.HasSuffix(op, ".mlp_norm"):
		return strings.TrimSuffix(op, "_norm") + ".in", true
	case strings.HasSuffix(op, ".attn"):
		return op + ".wo.in", true
	case strings.HasSuffix(op, ".mlp.swiglu") && !hadamard:
		return strings.TrimSuffix(op, ".swiglu") + ".w2.in", true
	case strings.HasSuffix(op, ".mlp.hadamard"):
		return strings.TrimSuffix(op, ".hadamard") + ".w2.in", true
	}
	return "", false
}

// lmLowering collects what lmref.Build needs, remembering the first error.
type lmLowering struct {
	lm       *graph.LM
	sp       map[string]qat.SiteParams
	point    func(string) ([]quant.Params, error)
	err      error
	groupErr float64 // largest relative change of a group scale by snapping
}

func (l *lmLowering) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

func (l *lmLowering) act(op string) quant.Params {
	if site, ok := lmActSite(op, l.lm.Config.OnlineHadamard); ok {
		p, err := actParams(l.sp[site])
		if err != nil {
			l.fail(err)
			return quant.Params{Scale: 1}
		}
		return p
	}
	ps, err := l.point(op)
	if err != nil {
		l.fail(err)
		return quant.Params{Scale: 1}
	}
	return ps[0]
}

// kvSite returns the parameters of the KV-cache site name when the Prepared quantizes it
// (qat.QConfig.KV), which must be symmetric with one scale per head; ok false: the cache is a
// calibrated point.
func (l *lmLowering) kvSite(name string) (qat.SiteParams, bool) {
	sp, ok := l.sp[name]
	if !ok || sp.Float {
		return sp, false
	}
	if sp.Range.Min != -sp.Range.Max || sp.Range.Max > qmodel.MaxCacheLevel || len(sp.Params) != l.lm.Config.Heads {
		l.fail(fmt.Errorf("%w: KV-cache site %q is %d-bit %v with %d scales: the runtime's cache is symmetric with one scale per head", ErrUnsupported, name, sp.Bits, sp.Range, len(sp.Params)))
		return sp, false
	}
	return sp, true
}

// cacheMax returns the largest level of a KV cache: the range of its site, or the int8 cache's.
func (l *lmLowering) cacheMax(name string) int {
	if sp, ok := l.kvSite(name); ok {
		return int(sp.Range.Max)
	}
	return qmodel.MaxCacheLevel
}

func (l *lmLowering) cache(name string, g int) float32 {
	if sp, ok := l.kvSite(name); ok {
		return sp.Params[g].Scale
	}
	ps, err := l.point(name)
	if err != nil || g >= len(ps) {
		l.fail(fmt.Errorf("export: KV cache %q head %d: %v", name, g, err))
		return 1
	}
	return ps[g].Scale
}

func (l *lmLowering) gain(layer string) []float32 {
	p := l.lm.Param(layer + ".gain")
	if p == nil {
		l.fail(fmt.Errorf("export: LM has no parameter %q", layer+".gain"))
		return nil
	}
	v, err := paramFloats(p)
	if err != nil {
		l.fail(err)
		return nil
	}
	g := make([]float32, len(v))
	for i, x := range v {
		g[i] = float32(x)
	}
	return g
}

func paramFloats(p *graph.Param) ([]float64, error) {
	v := floats(p.Value)
	if v == nil {
		return nil, fmt.Errorf("export: parameter %q is %v, want float32 or float64", p.Name, p.Value.Dtype())
	}
	return v, nil
}

// weights quantizes a linear's weight (or the embedding table) as its fake-quantizer does.
func (l *lmLowering) weights(name string) qmodel.GroupedWeights {
	none := qmodel.GroupedWeights{Weights: qmodel.Weights{Values: []int8{0}, Shape: []int{1, 1}, Scales: []float32{1}}}
	p := l.lm.Param(name + ".weight")
	if p == nil {
		l.fail(fmt.Errorf("export: LM has no parameter %q", name+".weight"))
		return none
	}
	w, err := paramFloats(p)
	if err != nil {
		l.fail(err)
		return none
	}
	s := p.Value.Shape()
	n, k := s[0], s[1]
	if name == "tok_emb" {
		// The embedding output point is symmetric per tensor: the table holds its levels, so the
		// lookup (multiplier 1) reproduces the fake-quantized embedding exactly.
		ps, err := l.point("tok_emb")
		if err != nil {
			l.fail(err)
			return none
		}
		return quantizeRows(w, n, k, ps[:1], quant.NarrowSigned(8), false)
	}
	sp, ok := l.sp[name+".weight"]
	switch {
	case !ok:
		l.fail(fmt.Errorf("export: no quantizer state for weight site %q", name+".weight"))
		return none
	case sp.Float:
		l.fail(fmt.Errorf("%w: weight site %q is not quantized (the runtime is integer-only)", ErrUnsupported, name+".weight"))
		return none
	case sp.Bits > 8 || sp.Range.Min != -sp.Range.Max:
		l.fail(fmt.Errorf("%w: weight site %q is %d-bit %v: want symmetric narrow-range weights of at most 8 bits", ErrUnsupported, name+".weight", sp.Bits, sp.Range))
		return none
	}
	for _, q := range sp.Params {
		if q.ZeroPoint != 0 {
			l.fail(fmt.Errorf("%w: weight site %q has zero point %d (symmetric weights only)", ErrUnsupported, name+".weight", q.ZeroPoint))
			return none
		}
	}
	int4 := sp.Bits <= 4
	switch np := len(sp.Params); {
	case np == 1 || np == n:
		return quantizeRows(w, n, k, sp.Params, sp.Range, int4)
	case np%n == 0 && k%(np/n) == 0:
		if !int4 {
			l.fail(fmt.Errorf("%w: weight site %q: %d-bit per-group weights (the runtime has integer group scales for int4 weights only)", ErrUnsupported, name+".weight", sp.Bits))
			return none
		}
		gw, rel := quantizeGroups(w, n, k, k/(np/n), sp.Params, sp.Range)
		l.groupErr = math.Max(l.groupErr, rel)
		return gw
	}
	l.fail(fmt.Errorf("export: weight site %q has %d parameters for a [%d, %d] weight", name+".weight", len(sp.Params), n, k))
	return none
}

// quantizeRows quantizes w [n, k] with one scale per row (or one in all) through quant.QuantizeValue,
// the fake-quant forward's rule.
func quantizeRows(w []float64, n, k int, ps []quant.Params, r quant.Range, int4 bool) qmodel.GroupedWeights {
	q := make([]int8, n*k)
	scales := make([]float32, len(ps))
	for i, p := range ps {
		scales[i] = p.Scale
	}
	for row := 0; row < n; row++ {
		s := scales[min(row, len(scales)-1)]
		for j := row * k; j < (row+1)*k; j++ {
			q[j] = int8(quant.QuantizeValue(float32(w[j]), s, 0, r.Min, r.Max))
		}
	}
	return qmodel.GroupedWeights{Weights: qmodel.Weights{Values: q, Shape: []int{n, k}, Scales: scales, Int4: int4}}
}

// GroupScaleMax returns the largest integer group scale export uses for an int4 weight with k
// inputs: qmodel.MaxGroupScale, or less where k*7*255*scale (weight times input minus zero point)
// could overflow the int32 accumulator (qmodel's validation bound).
func GroupScaleMax(k int) int32 {
	return int32(min(int64(qmodel.MaxGroupScale), int64(math.MaxInt32)/(int64(k)*7*255)))
}

// quantizeGroups quantizes w [n, k] per group of g inputs with the float group scales ps
// (row-major [n][k/g]) as the fake-quant forward does, and snaps the scales to qmodel's integer
// form: row scale r = max_g s / GroupScaleMax(k) and sub-scale round(s/r) (at least 1). It returns
// the largest relative change |r*round(s/r) - s|/s of a group scale.
func quantizeGroups(w []float64, n, k, g int, ps []quant.Params, r quant.Range) (qmodel.GroupedWeights, float64) {
	groups := k / g
	smax := float64(GroupScaleMax(k))
	q := make([]int8, n*k)
	rows := make([]float32, n)
	gs := make([]int32, n*groups)
	var rel float64
	for row := 0; row < n; row++ {
		mx := 0.0
		for j := 0; j < groups; j++ {
			mx = math.Max(mx, float64(ps[row*groups+j].Scale))
		}
		rows[row] = float32(mx / smax)
		for j := 0; j < groups; j++ {
			s := ps[row*groups+j].Scale
			sub := math.Min(math.Max(1, math.Round(float64(s)/float64(rows[row]))), smax)
			gs[row*groups+j] = int32(sub)
			rel = math.Max(rel, math.Abs(float64(rows[row])*sub-float64(s))/float64(s))
			for c := j * g; c < (j+1)*g; c++ {
				q[row*k+c] = int8(quant.QuantizeValue(float32(w[row*k+c]), s, 0, r.Min, r.Max))
			}
		}
	}
	return qmodel.GroupedWeights{Weights: qmodel.Weights{Values: q, Shape: []int{n, k}, Scales: rows, Int4: true},
		GroupSize: g, GroupScales: gs}, rel
}

// lowerLM builds the qmodel LM of lm from its site parameters and the runtime points' parameters.
func lowerLM(lm *graph.LM, sp map[string]qat.SiteParams, point func(string) ([]quant.Params, error), qconfig string, opt Options) (*qmodel.Model, float64, error) {
	c := lm.Config
	l := &lmLowering{lm: lm, sp: sp, point: point}
	name := opt.Name
	if name == "" {
		name = lm.Name
	}
	meta := map[string]string{"qconfig": qconfig, "tokenizer": "bytes"}
	if c.Vocab != 256 {
		delete(meta, "tokenizer")
	}
	for k, v := range opt.Meta {
		meta[k] = v
	}
	cfg := lmref.Config{Vocab: c.Vocab, Dim: c.Dim, Layers: c.Layers, Heads: c.Heads, KVHeads: c.Heads, Hidden: c.Hidden,
		Ctx: c.Ctx, Theta: float32(c.RoPEBase), Eps: float32(c.Eps), Hadamard: c.OnlineHadamard}
	m, err := lmref.Build(cfg, lmref.Spec{Name: name, Producer: Producer, Meta: meta,
		Weights: l.weights, Gain: l.gain, Act: l.act, Cache: l.cache, CacheMax: l.cacheMax})
	if l.err != nil {
		return nil, 0, l.err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("export: LM %q: %w", lm.Name, err)
	}
	return m, l.groupErr, nil
}
