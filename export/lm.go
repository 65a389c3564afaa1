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

// LMOptions control the export of a language model (NewLMExporter, LMExporter.Lower).
type LMOptions struct {
	// Name of the exported model (default: the LM's name).
	Name string
	// Meta is copied into the model's metadata ("qconfig" is set to the QConfig's name unless
	// Meta sets it).
	Meta map[string]string
	// Batch is the number of sequences of Ctx tokens per run of the fake-quant graph (default 1);
	// calibration and parity batches hold Batch*Ctx token ids.
	Batch int
}

// LMExporter exports a prepared (QAT-trained or calibrated) graph.LM to a qmodel language model.
// It owns a fake-quant evaluation graph of the LM that models the integer runtime at every
// quantization point: the quantizer sites of the Prepared (linear inputs and weights, with their
// trained state) plus, at every graph.LMPoint (embedding output, linear outputs, RoPE outputs,
// KV cache, residual adds), an observer quantizer that Calibrate fits on calibration tokens
// (running min/max; asymmetric int8 per tensor, the KV cache symmetric per head, the embedding
// symmetric per tensor). Those points have no state in the Prepared: training does not model
// them, export calibrates them.
type LMExporter struct {
	p      *qat.Prepared
	lm     *graph.LM
	opt    LMOptions
	g      *lmGraph
	points map[string]*fakequant.Quantizer
	ready  bool // calibrated
}

// lmGraph is an evaluation graph of a prepared LM, its machine and its quantizers.
type lmGraph struct {
	net *graph.LMNet
	nq  *qat.NetQuant
	vm  G.VM
}

func newLMGraph(p *qat.Prepared, lm *graph.LM, batch int, points graph.LMPointFunc) (*lmGraph, error) {
	nq := p.EvalQuantizer()
	n, err := lm.Build(graph.LMOptions{Batch: batch, Quant: nq, Points: points})
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
		return 0, fmt.Errorf("export: running the fake-quant LM graph (every quantizer needs trained or calibrated state: QAT, LMTrainer.Calibrate, or a QAT checkpoint): %w", err)
	}
	v := floats(g.net.Loss.Value())
	if len(v) != 1 {
		return 0, errors.New("export: the LM graph has no scalar loss")
	}
	return v[0], nil
}

// NewLMExporter builds the export graph of p, which must prepare a *graph.LM. Only models without
// online rotations (graph.LMOptions.Rotate) can be exported: fold rotations into the weights first.
func NewLMExporter(p *qat.Prepared, opt LMOptions) (*LMExporter, error) {
	if p == nil || p.Net == nil {
		return nil, errors.New("export: nil prepared model")
	}
	lm, ok := p.Net.(*graph.LM)
	if !ok {
		return nil, fmt.Errorf("%w: NewLMExporter needs a prepared *graph.LM, got a %s network", ErrUnsupported, p.Net.Arch().Type)
	}
	if opt.Batch == 0 {
		opt.Batch = 1
	}
	if opt.Batch < 0 {
		return nil, fmt.Errorf("export: LM batch %d", opt.Batch)
	}
	e := &LMExporter{p: p, lm: lm, opt: opt, points: map[string]*fakequant.Quantizer{}}
	g, err := newLMGraph(p, lm, opt.Batch, e.point)
	if err != nil {
		return nil, err
	}
	e.g = g
	return e, nil
}

// Close releases the graph's machine.
func (e *LMExporter) Close() { e.g.vm.Close() }

// point is the graph.LMPointFunc of the export graph: an observer quantizer per point.
func (e *LMExporter) point(pt graph.LMPoint, x *G.Node) (*G.Node, error) {
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

// Calibrate fits the quantizers of the runtime points on the batches (each Batch*Ctx token ids,
// e.g. the LMTrainer's calibration batches): running min/max over all of them, with every earlier
// quantizer already applied, then freezes them. It can be called once.
func (e *LMExporter) Calibrate(batches [][]int) error {
	if e.ready {
		return errors.New("export: the LM exporter is already calibrated")
	}
	if len(batches) == 0 {
		return errors.New("export: LM calibration needs at least one batch of tokens")
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

// Loss returns the mean next-token cross-entropy (nats) of the export graph (the fake-quant graph
// with every runtime point) over the batches (ids[i], targets[i]).
func (e *LMExporter) Loss(ids, targets [][]int) (float64, error) {
	if !e.ready {
		return 0, errors.New("export: LM exporter not calibrated (call Calibrate)")
	}
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
func (e *LMExporter) pointParams(name string) ([]quant.Params, error) {
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

// Lower lowers the calibrated model to a validated qmodel language model (see the package doc,
// "Language models") and returns it with the largest relative change that snapping float group
// scales to integer sub-scales made to a weight group's scale (0 without groups).
func (e *LMExporter) Lower() (*qmodel.Model, float64, error) {
	if !e.ready {
		return nil, 0, errors.New("export: LM exporter not calibrated (call Calibrate)")
	}
	sp := map[string]qat.SiteParams{}
	for _, s := range e.p.Sites {
		if s.Kind == graph.SiteWeight { // Observed weight sites describe the weights they saw last
			w := e.lm.Param(s.Name)
			if w == nil {
				return nil, 0, fmt.Errorf("export: LM has no parameter for weight site %q", s.Name)
			}
			v, err := paramFloats(w)
			if err != nil {
				return nil, 0, err
			}
			f := make([]float32, len(v))
			for i, x := range v {
				f[i] = float32(x)
			}
			if err := e.p.ObserveWeight(s.Name, w.Value.Shape(), f); err != nil {
				return nil, 0, fmt.Errorf("export: %w", err)
			}
		}
		v, err := e.p.Params(s.Name)
		if err != nil {
			return nil, 0, fmt.Errorf("export: quantizer state of site %q: %w", s.Name, err)
		}
		sp[s.Name] = v
	}
	return lowerLM(e.lm, sp, e.pointParams, e.p.Config.Name, e.opt)
}
