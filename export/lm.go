package export

import (
	"errors"
	"fmt"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LMEval is the fake-quant evaluation graph of a prepared graph.LM that models the integer
// runtime at every quantization point of an exported model: the quantizer sites of the Prepared
// (linear inputs and weights, with their trained state) plus, at every graph.LMPoint (embedding
// output, linear outputs, RoPE outputs, KV cache, residual adds), a fake-quantizer with the
// parameters the exported model gives that point. Lower builds the same graph with observers at
// the points and fits them on Options.Calib; NewLMEval reads them back from the model Lower made,
// so the graph checks exactly the exported file. Its loss (Loss) is the fake-quant figure the
// integer runtime is compared with (Parity), next to the training graph's. Between the points
// NewLMEval's graph takes every runtime op's value from the exported model's integer arithmetic
// as internal/lmspec specifies it, an implementation independent of package infer (see SetArith
// and the package doc): where the two implementations of the contract agree, its activations,
// logits and greedy generations are the runtime's bit for bit.
type LMEval struct {
	p      *qat.Prepared
	lm     *graph.LM
	batch  int
	g      *lmGraph
	points map[string]*fakequant.Quantizer
	qm     *qmodel.Model // the exported model (nil while Lower calibrates)
	snap   float64       // group scale snapping error of qm's weights
	ready  bool          // the points have their parameters (calibrated or read from qm)
	subs   []string      // runtime ops the graph substitutes (graph.LMOptions.Runtime)
	rt     *lmRuntime    // the model the substitutes run (NewLMEval), nil while Lower calibrates
	exact  bool          // the substitutes take the integer ops' values (else the float ops')
	arith  LMArith       // which integer ops: the specification's or the runtime's (SetArith)
}

// lmGraph is an evaluation graph of a prepared LM, its machine and its quantizers.
type lmGraph struct {
	net *graph.LMNet
	nq  *qat.NetQuant
	vm  G.VM
}

func newLMGraph(p *qat.Prepared, lm *graph.LM, batch int, points graph.LMPointFunc, runtime graph.LMRuntimeFunc) (*lmGraph, error) {
	nq := p.EvalQuantizer()
	n, err := lm.Build(graph.LMOptions{Batch: batch, Quant: nq, Points: points, Runtime: runtime})
	if err != nil {
		return nil, fmt.Errorf("export: building the fake-quant graph: %w", err)
	}
	// As for the CNN: TraceExec with a watch list keeps the values of the watched nodes readable
	// after the run (the tape machine may reuse a dead node's buffer).
	watch := []any{n.Logits, n.Loss}
	for _, m := range []map[string]*G.Node{n.Sites, n.Points} {
		for _, node := range m {
			watch = append(watch, node)
		}
	}
	return &lmGraph{net: n, nq: nq, vm: G.NewTapeMachine(n.G, G.TraceExec(), G.WithWatchlist(watch...))}, nil
}

// run runs the graph on one batch (Batch*Ctx ids; targets nil: the ids themselves) and returns
// the mean next-token cross-entropy.
func (g *lmGraph) run(ids, targets []int) (float64, error) {
	if targets == nil {
		targets = ids
	}
	if err := g.net.SetBatch(ids, targets); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	g.vm.Reset()
	if err := g.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("export: running the fake-quant LM graph (every quantizer needs trained or calibrated state: QAT, qat.Trainer.Calibrate, or a QAT checkpoint): %w", err)
	}
	v := floats(g.net.Loss.Value())
	if len(v) != 1 {
		return 0, errors.New("export: the LM graph has no scalar loss")
	}
	return v[0], nil
}

// newLMEval builds the evaluation graph of p, which must prepare a *graph.LM, for batches of
// batch sequences. Without fixed, every point has an observer (Lower's calibration); with it, the
// point pt uses the parameters fixed(pt.Name) gives (NewLMEval). Only models without online
// rotations (graph.LMOptions.Rotate) can be exported: fold rotations into the weights first.
func newLMEval(p *qat.Prepared, batch int, fixed func(string) ([]quant.Params, error)) (*LMEval, error) {
	if p == nil || p.Net == nil {
		return nil, errors.New("export: nil prepared model")
	}
	lm, ok := p.Net.(*graph.LM)
	if !ok {
		return nil, fmt.Errorf("%w: a language-model graph needs a prepared *graph.LM, got a %s network", ErrUnsupported, p.Net.Arch().Type)
	}
	if batch == 0 {
		batch = 1
	}
	if batch < 0 {
		return nil, fmt.Errorf("export: LM batch %d", batch)
	}
	e := &LMEval{p: p, lm: lm, batch: batch, points: map[string]*fakequant.Quantizer{}}
	point := func(pt graph.LMPoint, x *G.Node) (*G.Node, error) {
		q, err := e.point(pt, x)
		if err != nil || fixed == nil {
			return q, err
		}
		ps, err := fixed(pt.Name)
		if err != nil {
			return nil, err
		}
		if err := e.points[pt.Name].SetParams(ps); err != nil {
			return nil, fmt.Errorf("export: point %q: %w", pt.Name, err)
		}
		return q, nil
	}
	g, err := newLMGraph(p, lm, batch, point, e.runtimeOp)
	if err != nil {
		return nil, err
	}
	e.g, e.ready = g, fixed != nil
	return e, nil
}

// NewLMEval builds the evaluation graph of p (a prepared *graph.LM) for batches of batch
// sequences of Ctx tokens (0 means 1), with the runtime points' parameters of qm, the model Lower
// exported from p: the per-tensor parameters of each point's runtime tensor and the per-head
// scales of the KV caches.
func NewLMEval(p *qat.Prepared, qm *qmodel.Model, batch int) (*LMEval, error) {
	if qm == nil || !qm.IsLM() {
		return nil, errors.New("export: NewLMEval needs the language model Lower exported")
	}
	pts, err := modelPoints(qm)
	if err != nil {
		return nil, err
	}
	fixed := func(name string) ([]quant.Params, error) {
		ps, ok := pts[name]
		if !ok {
			return nil, fmt.Errorf("export: the model has no runtime tensor for point %q (not exported from this LM?)", name)
		}
		return ps, nil
	}
	e, err := newLMEval(p, batch, fixed)
	if err != nil {
		return nil, err
	}
	sp, err := lmSiteParams(p, e.lm)
	if err != nil {
		e.Close()
		return nil, err
	}
	if _, e.snap, err = lowerLM(e.lm, sp, fixed, p.Config.Name, Options{}); err != nil {
		e.Close()
		return nil, err
	}
	e.qm = qm
	if err := e.bindRuntime(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// modelPoints reads the parameters of every LM point from a model made by lowerLM: the output
// tensor of the op named like the point, and for "<blk>.attn.k_cache" / "v_cache" the per-head
// cache scales of the Attention op "<blk>.attn" (symmetric, zero point 0).
func modelPoints(qm *qmodel.Model) (map[string][]quant.Params, error) {
	out := map[string][]quant.Params{}
	for i := range qm.Ops {
		op := &qm.Ops[i]
		if len(op.Outputs) > 0 {
			if t := &qm.Tensors[op.Outputs[0]]; t.DType == qmodel.Int8 && t.Quant != nil {
				out[op.Name] = []quant.Params{t.Quant.Params()}
			}
		}
		if op.Kind != qmodel.OpAttention || len(op.Inputs) < 5 {
			continue
		}
		for j, suf := range []string{".k_cache", ".v_cache"} {
			s, err := qm.Tensors[op.Inputs[3+j]].Float32Values()
			if err != nil {
				return nil, fmt.Errorf("export: %s cache scales: %w", op.Name, err)
			}
			ps := make([]quant.Params, len(s))
			for h, v := range s {
				ps[h] = quant.Params{Scale: v}
			}
			out[op.Name+suf] = ps
		}
	}
	return out, nil
}

// Close releases the graph's machine.
func (e *LMEval) Close() { e.g.vm.Close() }

// point is the graph.LMPointFunc of the evaluation graph: an observer quantizer per point.
func (e *LMEval) point(pt graph.LMPoint, x *G.Node) (*G.Node, error) {
	cfg := fakequant.Config{Name: "export/" + pt.Name, Bits: 8, Method: fakequant.Observed, Scheme: fakequant.AsymmetricSigned}
	switch pt.Kind {
	case graph.PointEmbedding:
		cfg.Scheme = fakequant.SymmetricNarrow
	case graph.PointKVCache:
		cfg.Scheme, cfg.Granularity, cfg.Axis = fakequant.SymmetricNarrow, fakequant.PerChannel, 1
	}
	q, err := fakequant.New(x.Graph(), x, cfg)
	if err != nil {
		return nil, err
	}
	e.points[pt.Name] = q
	return q.Out, nil
}

// calibrate fits the quantizers of the runtime points on the batches (each batch*Ctx token ids):
// running min/max over all of them, with every earlier quantizer already applied, then freezes
// them.
func (e *LMEval) calibrate(batches [][]int) error {
	if e.ready {
		return errors.New("export: the LM graph is already calibrated")
	}
	if len(batches) == 0 {
		return errors.New("export: exporting a language model needs calibration batches of tokens (Options.Calib)")
	}
	for i, ids := range batches {
		if _, err := e.g.run(ids, nil); err != nil {
			return fmt.Errorf("export: LM calibration batch %d: %w", i, err)
		}
	}
	for _, q := range e.points {
		q.Freeze()
	}
	e.ready = true
	return nil
}

// Loss returns the mean next-token cross-entropy (nats) of the evaluation graph (the fake-quant
// graph with every runtime point) over the batches (ids[i], targets[i]).
func (e *LMEval) Loss(ids, targets [][]int) (float64, error) {
	if len(ids) == 0 || len(ids) != len(targets) {
		return 0, fmt.Errorf("export: LM loss over %d id and %d target batches", len(ids), len(targets))
	}
	var sum float64
	for i := range ids {
		l, err := e.g.run(ids[i], targets[i])
		if err != nil {
			return 0, err
		}
		sum += l
	}
	return sum / float64(len(ids)), nil
}

// floats returns the values of a tensor (float32 or float64) as float64.
func floats(v G.Value) []float64 {
	t, ok := v.(tensor.Tensor)
	if !ok || t == nil {
		if s, ok := v.(*G.F32); ok {
			return []float64{float64(*s)}
		}
		if s, ok := v.(*G.F64); ok {
			return []float64{float64(*s)}
		}
		return nil
	}
	switch d := t.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	case float32:
		return []float64{float64(d)}
	case float64:
		return []float64{d}
	}
	return nil
}

// pointParams returns the frozen parameters of a runtime point.
func (e *LMEval) pointParams(name string) ([]quant.Params, error) {
	q, ok := e.points[name]
	if !ok {
		return nil, fmt.Errorf("export: the LM graph has no point %q", name)
	}
	ps, err := q.Params()
	if err != nil {
		return nil, fmt.Errorf("export: point %q: %w", name, err)
	}
	return ps, nil
}

// actParams returns the int8 parameters of an activation site, which must be quantized to 8-bit
// signed levels (the runtime's activations).
func actParams(sp qat.SiteParams) (quant.Params, error) {
	if sp.Float {
		return quant.Params{}, fmt.Errorf("%w: activation site %q is not quantized (the runtime is integer-only)", ErrUnsupported, sp.Site.Name)
	}
	if sp.Range != quant.Signed(8) || len(sp.Params) != 1 {
		return quant.Params{}, fmt.Errorf("%w: activation site %q is %d-bit %v with %d parameters: the LM runtime needs signed 8-bit per-tensor activations", ErrUnsupported, sp.Site.Name, sp.Bits, sp.Range, len(sp.Params))
	}
	return sp.Params[0], nil
}

// lmSiteParams returns the parameters of every site of a prepared LM from the state the
// Prepared owns; Observed weight sites first observe the LM's current weights (they describe the
// weights their graph saw last).
func lmSiteParams(p *qat.Prepared, lm *graph.LM) (map[string]qat.SiteParams, error) {
	sp := map[string]qat.SiteParams{}
	for _, s := range p.Sites {
		if s.Kind == graph.SiteWeight {
			w := lm.Param(s.Name)
			if w == nil {
				return nil, fmt.Errorf("export: LM has no parameter for weight site %q", s.Name)
			}
			v, err := paramFloats(w)
			if err != nil {
				return nil, err
			}
			f := make([]float32, len(v))
			for i, x := range v {
				f[i] = float32(x)
			}
			if err := p.ObserveWeight(s.Name, w.Value.Shape(), f); err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
		}
		v, err := p.Params(s.Name)
		if err != nil {
			return nil, fmt.Errorf("export: quantizer state of site %q: %w", s.Name, err)
		}
		sp[s.Name] = v
	}
	return sp, nil
}

// lowerPreparedLM is Lower for a prepared *graph.LM: it builds the evaluation graph with
// observers at the runtime points, calibrates them on opt.Calib and lowers the model.
func lowerPreparedLM(p *qat.Prepared, opt Options) (*qmodel.Model, error) {
	if opt.Labels != nil || opt.Uint8Input != nil || opt.Softmax || opt.NoWeightRescale {
		return nil, fmt.Errorf("%w: Options.Labels, Uint8Input, Softmax and NoWeightRescale apply to layer models, not to a language model", ErrUnsupported)
	}
	e, err := newLMEval(p, opt.Batch, nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	if err := e.calibrate(opt.Calib); err != nil {
		return nil, err
	}
	sp, err := lmSiteParams(p, e.lm)
	if err != nil {
		return nil, err
	}
	qm, _, err := lowerLM(e.lm, sp, e.pointParams, p.Config.Name, opt)
	return qm, err
}
