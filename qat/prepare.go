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
// BN-folded conv/linear weights, outputs of fused groups after their activation). Graphs built
// through it (Quantizer) get fake-quant nodes at exactly those sites; their learnable quantizer
// parameters (LSQ log-scale and offset, PACT alpha) are shared tensors, and observer state is
// carried between graphs by Sync/apply, so a training graph and an evaluation graph agree.
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

	// learnables shared by every graph (nil until the first graph is built)
	logScale, offset, alpha *tensor.Dense
	// observer state (Observed)
	lo, hi  []float64
	hasObs  bool
	fixed   []quant.Params // explicit params (SetParams) for Observed, nil otherwise
	enabled bool
	frozen  bool
}

// Prepare applies c to a network (a *graph.Model or a *graph.LM). It validates every site's
// configuration; the network itself is not changed (its graphs are built with
// Prepared.Quantizer as their graph.Quantizer, and FoldBN for a Model).
func Prepare(m graph.Network, c QConfig) (*Prepared, error) {
	p := &Prepared{Net: m, Config: c, Sites: m.Sites(), state: map[string]*siteState{}}
	if lm, ok := m.(*graph.Model); ok {
		if err := lm.Err(); err != nil {
			return nil, err
		}
		p.Model = lm
	}
	for _, s := range p.Sites {
		fc, on, err := c.fqConfig(m, s)
		if err != nil {
			return nil, err
		}
		p.state[s.Name] = &siteState{site: s, spec: c.spec(m, s), cfg: fc, on: on, enabled: true}
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
	p  *Prepared
	Qs map[string]*fakequant.Quantizer
}

// Quantizer returns a fresh graph.Quantizer for building one graph of the prepared model.
func (p *Prepared) Quantizer() *NetQuant {
	return &NetQuant{p: p, Qs: map[string]*fakequant.Quantizer{}}
}

// Quantize implements graph.Quantizer.
func (nq *NetQuant) Quantize(s graph.Site, x *G.Node) (*G.Node, error) {
	st, ok := nq.p.state[s.Name]
	if !ok {
		return nil, fmt.Errorf("qat: unknown site %q", s.Name)
	}
	if !st.on {
		return x, nil
	}
	q, err := fakequant.New(x.Graph(), x, st.cfg)
	if err != nil {
		return nil, err
	}
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
	if err := st.apply(q); err != nil {
		return nil, err
	}
	nq.Qs[s.Name] = q
	return q.Out, nil
}

func (st *siteState) apply(q *fakequant.Quantizer) error {
	if st.cfg.Method == fakequant.Observed {
		switch {
		case st.fixed != nil:
			if err := q.SetParams(st.fixed); err != nil {
				return err
			}
		case st.hasObs:
			if err := q.SetRange(st.lo, st.hi); err != nil {
				return err
			}
		}
	}
	q.SetEnabled(st.enabled)
	if st.frozen {
		q.Freeze()
	} else {
		q.Unfreeze()
		if st.fixed != nil {
			// Unfreeze dropped the fixed params: set them again (they stay until observed data changes them)
			if err := q.SetParams(st.fixed); err != nil {
				return err
			}
			q.Unfreeze()
		}
	}
	return nil
}

// Sync copies the observer state of the quantizers of a (training) graph into the shared state.
func (p *Prepared) Sync(nq *NetQuant) {
	for name, q := range nq.Qs {
		st := p.state[name]
		if st.cfg.Method != fakequant.Observed {
			continue
		}
		if lo, hi, err := q.ObserverRange(); err == nil {
			st.lo, st.hi, st.hasObs, st.fixed = lo, hi, true, nil
		}
	}
}

// Apply pushes the shared state (observer ranges, enabled, frozen) into the quantizers of a graph.
// evalMode freezes the activation observers regardless of the shared frozen flag (weight
// observers keep tracking the current weights, as export will).
func (p *Prepared) Apply(nq *NetQuant, evalMode bool) error {
	for name, q := range nq.Qs {
		st := p.state[name]
		if err := st.apply(q); err != nil {
			return err
		}
		if evalMode && st.site.Kind == graph.SiteActivation {
			q.Freeze() // weight observers keep tracking the current weights
		}
	}
	return nil
}

// SetEnabled turns every fake-quantizer on or off (the fake-quant enable delay).
func (p *Prepared) SetEnabled(on bool) {
	for _, st := range p.state {
		st.enabled = on
	}
}

// FreezeObservers stops (or with false resumes) every observer.
func (p *Prepared) FreezeObservers(frozen bool) {
	for _, st := range p.state {
		st.frozen = frozen
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

// Params returns the current quantization parameters of a site, computed exactly as the
// fake-quant forward computes them (through a quantizer of nq, which must come from a graph that
// has run at least once for Observed sites). For weight sites the scales are those of the
// BN-folded weight W*gamma/sigma_running.
func (p *Prepared) Params(nq *NetQuant, site string) (SiteParams, error) {
	st, ok := p.state[site]
	if !ok {
		return SiteParams{}, fmt.Errorf("qat: unknown site %q", site)
	}
	if !st.on {
		return SiteParams{Site: st.site, Float: true}, nil
	}
	q, ok := nq.Qs[site]
	if !ok {
		return SiteParams{}, fmt.Errorf("qat: site %q has no quantizer in this graph", site)
	}
	ps, err := q.Params()
	if err != nil {
		return SiteParams{}, err
	}
	return SiteParams{Site: st.site, Bits: st.cfg.Bits, Range: q.Range(), Params: ps}, nil
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
		if st.hasObs {
			c.Put("quant/"+s.Name+".obs_lo", f64Tensor(st.lo))
			c.Put("quant/"+s.Name+".obs_hi", f64Tensor(st.hi))
		}
		if st.fixed != nil {
			sc := make([]float64, len(st.fixed))
			zp := make([]float64, len(st.fixed))
			for i, f := range st.fixed {
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
			c.Meta["quant/"+st.site.Name+".flags"] = fmt.Sprintf("enabled=%v frozen=%v", st.enabled, st.frozen)
			continue
		}
		c.Meta["quant/"+st.site.Name+".flags"] = fmt.Sprintf("enabled=%v frozen=%v method=%v state=%v",
			st.enabled, st.frozen, st.cfg.Method, st.hasState())
	}
}

// hasState reports whether the site has state that SaveState stores.
func (st *siteState) hasState() bool {
	switch st.cfg.Method {
	case fakequant.Observed:
		return st.hasObs || st.fixed != nil
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
	st.enabled, st.frozen = fl.enabled, fl.frozen
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
		st.lo, st.hi = append([]float64(nil), lo...), append([]float64(nil), hi...)
		st.hasObs = true
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
		st.fixed = nil
		for i, v := range sc {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < quant.MinScale || zp[i] != math.Trunc(zp[i]) || math.Abs(zp[i]) > 1<<31 {
				return fmt.Errorf("fixed parameter %d: bad scale %v or zero point %v", i, v, zp[i])
			}
			st.fixed = append(st.fixed, quant.Params{Scale: float32(v), ZeroPoint: int32(zp[i])})
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
