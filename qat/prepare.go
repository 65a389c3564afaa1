package qat

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Prepared is a model with a QConfig applied: one fake-quantizer per graph.Site (model input,
// BN-folded conv/linear weights, outputs of fused groups after their activation).
//
// Ownership of quantizer state: the Prepared model is the single owner of every site's state.
// Learnable parameters (LSQ log-scale and offset, PACT alpha) are tensors owned here and bound by
// every graph built through Quantizer or EvalQuantizer; the rest (observer range, parameters
// fixed by calibration, the enabled and frozen flags) is one fakequant.State per site, which the
// fake-quant nodes of every graph read and update in place. Nothing is copied between graphs:
// a training graph's observations are what its evaluation graph uses, SaveState writes the same
// state to a checkpoint, LoadState restores it, and Params reads it for export without running a
// graph.
type Prepared struct {
	// Net is the prepared network: a *graph.Model or a *graph.LM (any graph.Network).
	Net graph.Network
	// Model is Net when it is a layer model (*graph.Model), nil otherwise (an LM): the view that
	// BN folding, calibration on image data and export use.
	Model  *graph.Model
	Config QConfig
	Sites  []graph.Site // all sites in graph order (including float ones)
	state  map[string]*siteState
}

type siteState struct {
	site graph.Site
	spec Spec // after overrides
	cfg  fakequant.Config
	on   bool // quantized (false: the site stays float)

	// learnables shared by every graph (nil until the first graph is built or a checkpoint is loaded)
	logScale, offset, alpha *tensor.Dense
	// fq is the site's observer range, fixed parameters and flags, shared by every graph.
	fq *fakequant.State
}

// Prepare applies c to a network (a *graph.Model or a *graph.LM). It validates every site's
// configuration; the network itself is not changed (its graphs are built with
// Prepared.Quantizer as their graph.Quantizer, and FoldBN for a Model).
func Prepare(m graph.Network, c QConfig) (*Prepared, error) {
	p := &Prepared{Net: m, Config: c, Sites: m.Sites(), state: map[string]*siteState{}}
	if c.GGML != nil {
		if _, ok := m.(*graph.LM); !ok {
			return nil, fmt.Errorf("qat: %s: the GGML preset is for language models (*graph.LM), not %T", c.Name, m)
		}
		if err := c.GGML.check(); err != nil {
			return nil, err
		}
		if c.KV != nil && !c.KV.Float {
			return nil, fmt.Errorf("qat: %s: the GGML preset models llama.cpp's own KV cache (GGMLPreset.KV); QConfig.KV cannot be set with it", c.Name)
		}
	}
	if lm, ok := m.(*graph.Model); ok {
		if err := lm.Err(); err != nil {
			return nil, err
		}
		p.Model = lm
	}
	if c.KV != nil && !c.KV.Float && c.KV.Bits != 0 {
		lm, ok := m.(*graph.LM)
		if !ok {
			return nil, fmt.Errorf("qat: %s: KV-cache quantization (QConfig.KV) needs a language model, not a %s network", c.Name, m.Arch().Type)
		}
		p.Sites = append(p.Sites, lm.KVSites()...)
	}
	for _, s := range p.Sites {
		fc, on, err := c.fqConfig(m, s)
		if err != nil {
			return nil, err
		}
		p.state[s.Name] = &siteState{site: s, spec: c.spec(m, s), cfg: fc, on: on, fq: fakequant.NewState()}
	}
	for k := range c.Overrides {
		if k != graph.InputName && !m.HasLayer(k) {
			return nil, fmt.Errorf("qat: %s: override for unknown layer %q", c.Name, k)
		}
	}
	return p, nil
}

// NetQuant is the graph.Quantizer for one graph; it records the fakequant.Quantizer it created
// at each site.
type NetQuant struct {
	p    *Prepared
	eval bool
	Qs   map[string]*fakequant.Quantizer
}

// Quantizer returns a fresh graph.Quantizer for building one training (or calibration) graph of
// the prepared model: its observers update the shared state.
func (p *Prepared) Quantizer() *NetQuant {
	return &NetQuant{p: p, Qs: map[string]*fakequant.Quantizer{}}
}

// EvalQuantizer returns a graph.Quantizer for an evaluation graph: its activation observers read
// the shared state without updating it (weight observers keep tracking the current weights, as
// export does).
func (p *Prepared) EvalQuantizer() *NetQuant {
	return &NetQuant{p: p, eval: true, Qs: map[string]*fakequant.Quantizer{}}
}

// Quantize implements graph.Quantizer.
func (nq *NetQuant) Quantize(s graph.Site, x *G.Node) (*G.Node, error) {
	st, ok := nq.p.state[s.Name]
	if !ok {
		return nil, fmt.Errorf("qat: unknown site %q", s.Name)
	}
	if !st.on {
		if g := nq.p.Config.GGML; g != nil {
			return g.Quantize(s, x)
		}
		return x, nil
	}
	q, err := fakequant.NewShared(x.Graph(), x, st.cfg, st.fq)
	if err != nil {
		return nil, err
	}
	q.SetEval(nq.eval && s.Kind != graph.SiteWeight)
	share := func(n *G.Node, dst **tensor.Dense) error {
		if n == nil {
			return nil
		}
		if *dst == nil {
			*dst = n.Value().(*tensor.Dense)
			return nil
		}
		return G.Let(n, *dst)
	}
	if err := share(q.LogScale, &st.logScale); err != nil {
		return nil, err
	}
	if err := share(q.Offset, &st.offset); err != nil {
		return nil, err
	}
	if err := share(q.Alpha, &st.alpha); err != nil {
		return nil, err
	}
	nq.Qs[s.Name] = q
	return q.Out, nil
}

// QuantizeKV implements graph.KVQuantizer: the KV-cache sites the QConfig quantizes (QConfig.KV)
// are fake-quantized like any site; the others are left alone (ok false).
func (nq *NetQuant) QuantizeKV(s graph.Site, x *G.Node) (*G.Node, bool, error) {
	if st, ok := nq.p.state[s.Name]; !ok || !st.on {
		return x, false, nil
	}
	y, err := nq.Quantize(s, x)
	return y, err == nil, err
}

var _ graph.KVQuantizer = (*NetQuant)(nil)

// SetEnabled turns every fake-quantizer on or off (the fake-quant enable delay).
func (p *Prepared) SetEnabled(on bool) {
	for _, st := range p.state {
		st.fq.SetEnabled(on)
	}
}

// whileDisabled runs fn with fake quantization off at every site, then restores each site's flag.
func (p *Prepared) whileDisabled(fn func() error) error {
	was := map[*siteState]bool{}
	for _, st := range p.state {
		was[st] = st.fq.Enabled()
		st.fq.SetEnabled(false)
	}
	defer func() {
		for st, on := range was {
			st.fq.SetEnabled(on)
		}
	}()
	return fn()
}

// FreezeObservers stops (or with false resumes) every observer.
func (p *Prepared) FreezeObservers(frozen bool) {
	for _, st := range p.state {
		if frozen {
			st.fq.Freeze()
		} else if st.fq.Frozen() {
			st.fq.Unfreeze()
		}
	}
}

// Learnable is a learnable quantizer tensor shared by all graphs of a Prepared model.
type Learnable struct {
	Name  string // "<site>.log_scale", "<site>.offset", "<site>.alpha"
	Value *tensor.Dense
}

// Learnables returns the learnable quantizer tensors created so far (after a graph was built).
func (p *Prepared) Learnables() []Learnable {
	var out []Learnable
	for _, s := range p.Sites {
		st := p.state[s.Name]
		for _, l := range []struct {
			suf string
			t   *tensor.Dense
		}{{".log_scale", st.logScale}, {".offset", st.offset}, {".alpha", st.alpha}} {
			if l.t != nil {
				out = append(out, Learnable{Name: s.Name + l.suf, Value: l.t})
			}
		}
	}
	return out
}

// LearnableNodes maps each learnable node of a graph's quantizers to its Learnable name.
func (nq *NetQuant) LearnableNodes() map[string]*G.Node {
	out := map[string]*G.Node{}
	for name, q := range nq.Qs {
		if q.LogScale != nil {
			out[name+".log_scale"] = q.LogScale
		}
		if q.Offset != nil {
			out[name+".offset"] = q.Offset
		}
		if q.Alpha != nil {
			out[name+".alpha"] = q.Alpha
		}
	}
	return out
}

// SiteParams is the final quantization of one site, what export writes.
type SiteParams struct {
	Site   graph.Site
	Bits   int
	Range  quant.Range    // integer range (e.g. [-127,127] weights, [-128,127] activations at 8 bits)
	Params []quant.Params // one per output channel (weights, per-channel) or one
	Float  bool           // the site is not quantized
}

// Params returns the current quantization parameters of a site, computed from the state the
// prepared model owns exactly as the fake-quant forward computes them, without running a graph:
// learned sites from their learnable tensors, Observed sites from their observed range or fixed
// parameters. An Observed weight site's range is that of the weights its graph saw last; an
// exporter that writes other (final) weights observes them first with ObserveWeight.
func (p *Prepared) Params(site string) (SiteParams, error) {
	st, ok := p.state[site]
	if !ok {
		return SiteParams{}, fmt.Errorf("qat: unknown site %q", site)
	}
	if !st.on {
		return SiteParams{Site: st.site, Float: true}, nil
	}
	var ps []quant.Params
	var err error
	switch st.cfg.Method {
	case fakequant.Observed:
		ps, err = st.fq.Params(st.cfg)
	case fakequant.PACT:
		if st.alpha == nil {
			return SiteParams{}, fmt.Errorf("qat: site %q: no learned alpha yet (build a graph or load a checkpoint)", site)
		}
		ps, err = fakequant.LearnedParams(st.cfg, floats(st.alpha))
	default:
		if st.logScale == nil || (st.cfg.LearnOffset && st.offset == nil) {
			return SiteParams{}, fmt.Errorf("qat: site %q: no learned scale yet (build a graph or load a checkpoint)", site)
		}
		ls := [][]float64{floats(st.logScale)}
		if st.cfg.LearnOffset {
			ls = append(ls, floats(st.offset))
		}
		ps, err = fakequant.LearnedParams(st.cfg, ls...)
	}
	if err != nil {
		return SiteParams{}, err
	}
	return SiteParams{Site: st.site, Bits: st.cfg.Bits, Range: st.cfg.Range(), Params: ps}, nil
}

// SetParams fixes the parameters of an Observed quantized site, for example the scales GPTQ chose
// for a weight (QuantizedWeight.Params): every graph quantizes the site with them, its observer
// skips it, and checkpoints and export keep them, until FreezeObservers(false) resumes observing.
// Learned and float sites, a wrong count or an invalid scale or zero point are errors.
func (p *Prepared) SetParams(site string, ps []quant.Params) error {
	st, ok := p.state[site]
	if !ok {
		return fmt.Errorf("qat: unknown site %q", site)
	}
	if !st.on || st.cfg.Method != fakequant.Observed {
		return fmt.Errorf("qat: site %q: SetParams needs a quantized site with an observer, not %v", site, st.cfg.Method)
	}
	l, err := fakequant.NewLayout(st.site.Shape, st.cfg)
	if err != nil {
		return fmt.Errorf("qat: site %q: %w", site, err)
	}
	if l.Slices() != len(ps) {
		return fmt.Errorf("qat: site %q: %d parameters, its quantizer has %d slices", site, len(ps), l.Slices())
	}
	r := st.cfg.Range()
	for i, q := range ps {
		if q.ZeroPoint < r.Min || q.ZeroPoint > r.Max || (st.cfg.Symmetric() && q.ZeroPoint != 0) {
			return fmt.Errorf("qat: site %q: parameter %d: zero point %d invalid for %v", site, i, q.ZeroPoint, r)
		}
	}
	if err := st.fq.RestoreFixed(ps); err != nil {
		return fmt.Errorf("qat: site %q: %w", site, err)
	}
	st.fq.Freeze()
	return nil
}

// ObserveWeight feeds the values w (shape shape, row-major; for a conv or linear with BatchNorm,
// the folded weight) to an Observed weight site as one forward pass of its graph would, so that
// Params describes exactly these weights. Learned and float sites are left alone.
func (p *Prepared) ObserveWeight(site string, shape []int, w []float32) error {
	st, ok := p.state[site]
	if !ok {
		return fmt.Errorf("qat: unknown site %q", site)
	}
	if !st.on || st.cfg.Method != fakequant.Observed {
		return nil
	}
	if st.site.Kind != graph.SiteWeight {
		return fmt.Errorf("qat: site %q is not a weight site", site)
	}
	return st.fq.Observe(st.cfg, shape, w)
}

// floats returns a float32 or float64 tensor's values as float64.
func floats(t *tensor.Dense) []float64 {
	switch d := t.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	}
	return nil
}

// SaveState stores the quantizer state in c under "quant/<site>.<field>": learnables (shared
// tensors) and observer ranges (or fixed parameters), the QConfig (name under MetaQConfigName,
// JSON under MetaQConfig, see CheckpointQConfig), the model name (MetaModel), and per-site flags in
// Meta["quant/<site>.flags"]: "enabled=<bool> frozen=<bool> method=<method> state=<bool>", where
// state says whether the site's learnables or observer state were stored (false for an observer
// that has seen no data or learnables of a model whose graph was never built).
func (p *Prepared) SaveState(c *graph.Checkpoint) {
	for _, l := range p.Learnables() {
		c.Put("quant/"+l.Name, l.Value)
	}
	for _, s := range p.Sites {
		st := p.state[s.Name]
		if lo, hi, ok := st.fq.Observed(); ok {
			c.Put("quant/"+s.Name+".obs_lo", f64Tensor(lo))
			c.Put("quant/"+s.Name+".obs_hi", f64Tensor(hi))
		}
		if fixed := st.fq.Fixed(); fixed != nil {
			sc := make([]float64, len(fixed))
			zp := make([]float64, len(fixed))
			for i, f := range fixed {
				sc[i], zp[i] = float64(f.Scale), float64(f.ZeroPoint)
			}
			c.Put("quant/"+s.Name+".fixed_scale", f64Tensor(sc))
			c.Put("quant/"+s.Name+".fixed_zp", f64Tensor(zp))
		}
	}
	if c.Meta == nil {
		c.Meta = map[string]string{}
	}
	c.Meta[MetaQConfigName] = p.Config.Name
	if j, err := json.Marshal(p.Config); err == nil { // cannot fail: plain fields and known methods
		c.Meta[MetaQConfig] = string(j)
	}
	c.Meta[MetaModel] = p.Net.Arch().Name
	for _, st := range p.state {
		if !st.on {
			c.Meta["quant/"+st.site.Name+".flags"] = fmt.Sprintf("enabled=%v frozen=%v", st.fq.Enabled(), st.fq.Frozen())
			continue
		}
		c.Meta["quant/"+st.site.Name+".flags"] = fmt.Sprintf("enabled=%v frozen=%v method=%v state=%v",
			st.fq.Enabled(), st.fq.Frozen(), st.cfg.Method, st.hasState())
	}
}

// hasState reports whether the site has state that SaveState stores.
func (st *siteState) hasState() bool {
	switch st.cfg.Method {
	case fakequant.Observed:
		_, _, ok := st.fq.Observed()
		return ok || st.fq.Fixed() != nil
	case fakequant.PACT:
		return st.alpha != nil
	}
	return st.logScale != nil && (!st.cfg.LearnOffset || st.offset != nil)
}

// siteFlags is the parsed Meta["quant/<site>.flags"].
type siteFlags struct {
	enabled, frozen bool
	method          string // "" in checkpoints written before the method was recorded
	state           bool   // the checkpoint holds the site's state (always assumed for old checkpoints)
}

func parseSiteFlags(f string) (siteFlags, error) {
	fl := siteFlags{state: true}
	n, err := fmt.Sscanf(f, "enabled=%t frozen=%t method=%s state=%t", &fl.enabled, &fl.frozen, &fl.method, &fl.state)
	switch {
	case n == 2 && err == io.ErrUnexpectedEOF: // older checkpoints: enabled and frozen only
		if strings.TrimSpace(f) != fmt.Sprintf("enabled=%v frozen=%v", fl.enabled, fl.frozen) {
			return fl, fmt.Errorf("malformed flags %q", f)
		}
		fl.method, fl.state = "", true
		return fl, nil
	case err != nil:
		return fl, fmt.Errorf("malformed flags %q: %v", f, err)
	}
	if want := fmt.Sprintf("enabled=%v frozen=%v method=%s state=%v", fl.enabled, fl.frozen, fl.method, fl.state); strings.TrimSpace(f) != want {
		return fl, fmt.Errorf("malformed flags %q", f)
	}
	return fl, nil
}

// f64Data returns the float64 data of checkpoint tensor name, or an error when it is missing or
// not a non-empty float64 vector.
func f64Data(c *graph.Checkpoint, name string) ([]float64, error) {
	t, ok := c.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("missing %q", name)
	}
	d, ok := t.Data().([]float64)
	if !ok || t.Dims() != 1 || len(d) == 0 {
		return nil, fmt.Errorf("%q is not a non-empty float64 vector (%v %v)", name, t.Dtype(), t.Shape())
	}
	return d, nil
}

// LoadState restores what SaveState stored. Learnables are restored into the shared tensors when
// they exist, otherwise kept until the first graph is built (pending).
//
// Every quantized site must have its flags and, unless they say the site had no state when it
// was saved, the state its method needs (LSQ: log_scale, and offset with LearnOffset; PACT: alpha;
// Observed: obs_lo and obs_hi, or fixed_scale and fixed_zp). A site saved with another method, a
// missing or malformed entry is an error that names the site; on error p may be partly restored.
func (p *Prepared) LoadState(c *graph.Checkpoint) error {
	for _, s := range p.Sites {
		st := p.state[s.Name]
		if err := st.load(c); err != nil {
			return fmt.Errorf("qat: %s: quantizer %q: %w", p.Config.Name, s.Name, err)
		}
	}
	return nil
}

func (st *siteState) load(c *graph.Checkpoint) error {
	name := st.site.Name
	f, ok := c.Meta["quant/"+name+".flags"]
	if !ok {
		if !st.on {
			return nil
		}
		return fmt.Errorf("checkpoint has no state for this quantizer (missing %q; a float checkpoint or another QConfig?)", "quant/"+name+".flags")
	}
	fl, err := parseSiteFlags(f)
	if err != nil {
		return err
	}
	st.fq.SetEnabled(fl.enabled)
	if fl.frozen {
		st.fq.Freeze()
	} else if st.fq.Frozen() {
		st.fq.Unfreeze()
	}
	if !st.on {
		return nil
	}
	if fl.method != "" && fl.method != st.cfg.Method.String() {
		return fmt.Errorf("checkpoint was trained with method %s, the QConfig says %v", fl.method, st.cfg.Method)
	}
	var required []string
	switch st.cfg.Method {
	case fakequant.LSQ:
		required = []string{".log_scale"}
		if st.cfg.LearnOffset {
			required = append(required, ".offset")
		}
	case fakequant.PACT:
		required = []string{".alpha"}
	}
	for _, f := range []struct {
		suf string
		t   **tensor.Dense
	}{{".log_scale", &st.logScale}, {".offset", &st.offset}, {".alpha", &st.alpha}} {
		key := "quant/" + name + f.suf
		t, ok := c.Tensors[key]
		if !ok {
			for _, r := range required {
				if r == f.suf && fl.state {
					return fmt.Errorf("missing %q", key)
				}
			}
			continue
		}
		if *f.t == nil {
			*f.t = t.Clone().(*tensor.Dense)
		} else if err := c.CopyTo(key, *f.t); err != nil {
			return err
		}
	}
	if st.cfg.Method != fakequant.Observed {
		return nil
	}
	_, hasLo := c.Tensors["quant/"+name+".obs_lo"]
	_, hasHi := c.Tensors["quant/"+name+".obs_hi"]
	_, hasSc := c.Tensors["quant/"+name+".fixed_scale"]
	_, hasZp := c.Tensors["quant/"+name+".fixed_zp"]
	if hasLo || hasHi {
		lo, err := f64Data(c, "quant/"+name+".obs_lo")
		if err != nil {
			return err
		}
		hi, err := f64Data(c, "quant/"+name+".obs_hi")
		if err != nil {
			return err
		}
		if len(lo) != len(hi) {
			return fmt.Errorf("obs_lo has %d values, obs_hi %d", len(lo), len(hi))
		}
		if err := st.fq.RestoreRange(lo, hi); err != nil {
			return err
		}
	}
	if hasSc || hasZp {
		sc, err := f64Data(c, "quant/"+name+".fixed_scale")
		if err != nil {
			return err
		}
		zp, err := f64Data(c, "quant/"+name+".fixed_zp")
		if err != nil {
			return err
		}
		if len(sc) != len(zp) {
			return fmt.Errorf("fixed_scale has %d values, fixed_zp %d", len(sc), len(zp))
		}
		var fixed []quant.Params
		for i, v := range sc {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < quant.MinScale || zp[i] != math.Trunc(zp[i]) || math.Abs(zp[i]) > 1<<31 {
				return fmt.Errorf("fixed parameter %d: bad scale %v or zero point %v", i, v, zp[i])
			}
			fixed = append(fixed, quant.Params{Scale: float32(v), ZeroPoint: int32(zp[i])})
		}
		if err := st.fq.RestoreFixed(fixed); err != nil {
			return err
		}
	}
	if !hasLo && !hasHi && !hasSc && !hasZp && fl.state {
		return fmt.Errorf("missing %q and %q (or fixed_scale and fixed_zp)", "quant/"+name+".obs_lo", "quant/"+name+".obs_hi")
	}
	return nil
}

func f64Tensor(v []float64) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(append([]float64(nil), v...)))
}

// initLSQ initialises the learned quantizers (LSQ, PACT) of nq: weight sites with the LSQ rule
// 2*mean|w|/sqrt(Qp) on the current value of their input (the folded weight; the graph must have
// run; with a percentile or MSE Spec.Observer: SetRange with that observer's range of the
// weight), activation sites from the observed [lo, hi] ranges of a calibration pass (SetRange), or
// with the LSQ rule on their current input when no range was recorded.
func (p *Prepared) initLSQ(nq *NetQuant, ranges map[string][2][]float64) error {
	for name, q := range nq.Qs {
		st := p.state[name]
		if st.cfg.Method != fakequant.LSQ && st.cfg.Method != fakequant.PACT {
			continue
		}
		if st.site.Kind == graph.SiteWeight {
			if err := initWeight(st.spec, q); err != nil {
				return err
			}
			continue
		}
		r, ok := ranges[name]
		if !ok {
			if err := q.InitFromInput(); err != nil {
				return err
			}
			continue
		}
		if err := q.SetRange(r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

// initWeight initialises a learned weight quantizer from its input value: the LSQ rule, or the range
// of the spec's percentile or MSE observer.
func initWeight(sp Spec, q *fakequant.Quantizer) error {
	o, err := newRangeObserver(sp, q)
	if err != nil || o == nil {
		if err != nil {
			return err
		}
		return q.InitFromInput()
	}
	v, err := inputFloats(q)
	if err != nil {
		return err
	}
	if err := o.Observe(v); err != nil {
		return err
	}
	lo, hi, err := o.Range()
	if err != nil {
		return err
	}
	return q.SetRange(lo, hi)
}
