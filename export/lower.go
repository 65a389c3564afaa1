package export

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
)

// ErrUnsupported is wrapped by every error about a model that the integer runtime cannot express
// (a layer kind, a combination of layers or a quantization setting).
var ErrUnsupported = errors.New("export: unsupported")

// Producer is written into the Producer field of exported models.
const Producer = "qatgo export"

// Options control Lower. Name and Meta apply to every model; Labels, Uint8Input, Softmax and
// NoWeightRescale to layer models (*graph.Model); Calib and Batch to language models (*graph.LM).
type Options struct {
	// Name of the exported model (default: the model's name).
	Name string
	// Labels name the output classes (optional).
	Labels []string
	// Meta is copied into the model's metadata.
	Meta map[string]string
	// Uint8Input makes the model input uint8 with real = Scale*(u - ZeroPoint) (for example
	// {Scale: 1/255} for image bytes when training fed pixel/255). nil: float32 input.
	Uint8Input *quant.Params
	// Softmax appends an integer Softmax (output scale 1/256, zero point -128) before the output
	// Dequantize. The training graph has no softmax, so parity is checked on the logits.
	Softmax bool
	// NoWeightRescale keeps the integer weights at the trained levels. By default, a channel
	// whose levels use at most half of the storage range (int8: 127, int4: 7), as 2- and 3-bit
	// weights do, is stored as w*k with scale s/k (k = storage max / max|w|): the same real
	// weights, but a k times finer bias scale s_in*s/k, so the int32 bias rounds k times less
	// far from the float bias that the fake-quant graph adds.
	NoWeightRescale bool

	// Calib holds the calibration batches of a language model, each Batch*Ctx token ids (for
	// example the trainer's calibration batches): export fits the runtime's quantization points
	// that no quantizer site covers on them (see the package doc, "Language models"). Required
	// for a language model.
	Calib [][]int
	// Batch is the number of sequences of Ctx tokens in each batch of Calib (0 means 1).
	Batch int
}

// SiteParams returns the quantization parameters of every site of a prepared model, exactly as its
// fake-quant evaluation graph uses them, read from the state the prepared model owns (no graph
// runs): each Observed weight site first observes the weight export writes (BN folded as Fold
// does, bit-identical to what the graph's fake-quantizer sees), as one evaluation pass would; then
// qat.Prepared.Params gives every site's scales and zero points. Float sites are included with
// Float set.
func SiteParams(p *qat.Prepared) (map[string]qat.SiteParams, error) {
	if p == nil || p.Net == nil {
		return nil, errors.New("export: nil prepared model")
	}
	if p.Model == nil {
		return nil, fmt.Errorf("export: a %s network (%q) cannot be exported to the integer runtime yet: only layer models (*graph.Model) are supported", p.Net.Arch().Type, p.Net.Arch().Name)
	}
	groups := map[string]graph.Group{}
	for _, g := range p.Model.Groups() {
		groups[g.Op] = g
	}
	out := map[string]qat.SiteParams{}
	for _, s := range p.Sites {
		if s.Kind == graph.SiteWeight {
			f, err := Fold(p.Model, groups[s.Group])
			if err != nil {
				return nil, err
			}
			if err := p.ObserveWeight(s.Name, f.Shape, f.Weight); err != nil {
				return nil, fmt.Errorf("export: weight of %q: %w", s.Group, err)
			}
		}
		sp, err := p.Params(s.Name)
		if err != nil {
			return nil, fmt.Errorf("export: quantizer state of site %q (every quantizer needs trained or calibrated state: QAT, qat.Calibrate, or a QAT checkpoint): %w", s.Name, err)
		}
		out[s.Name] = sp
	}
	return out, nil
}

// evalRun is a fake-quant evaluation graph of a prepared model.
type evalRun struct {
	p  *qat.Prepared
	nq *qat.NetQuant
	n  *graph.Net
	vm G.VM

	local  map[string]*localOp // parity: groups cut out of the integer model, by site
	orders map[string][]int    // parity: flatOrders of the model
}

func newEvalRun(p *qat.Prepared, batch int) (*evalRun, error) {
	if p == nil || p.Net == nil {
		return nil, errors.New("export: nil prepared model")
	}
	if p.Model == nil {
		return nil, fmt.Errorf("export: a %s network (%q) cannot be exported to the integer runtime yet: only layer models (*graph.Model) are supported", p.Net.Arch().Type, p.Net.Arch().Name)
	}
	nq := p.EvalQuantizer()
	n, err := p.Model.Build(graph.Options{Batch: batch, Quant: nq, FoldBN: true, FreezeBN: true})
	if err != nil {
		return nil, fmt.Errorf("export: building the evaluation graph: %w", err)
	}
	// Gorgonia's tape machine may compute an op in place in a dead input's register (an Add
	// overwrites a site's value, for example); TraceExec with a watch list binds copies to the
	// watched nodes, so every site value and the output stay readable after the run.
	watch := []any{n.Out}
	for _, s := range p.Sites {
		if node, ok := n.Sites[s.Name]; ok {
			watch = append(watch, node)
		}
	}
	for _, l := range p.Model.Layers { // inputs of the groups, for the layer-alone comparison
		if node, ok := n.Nodes[l.Name]; ok {
			watch = append(watch, node)
		}
	}
	return &evalRun{p: p, nq: nq, n: n, vm: G.NewTapeMachine(n.G, G.TraceExec(), G.WithWatchlist(watch...))}, nil
}

func (r *evalRun) run() error {
	r.vm.Reset()
	if err := r.vm.RunAll(); err != nil {
		return fmt.Errorf("export: running the fake-quant graph (every quantizer needs trained or calibrated state: QAT, qat.Calibrate, or a QAT checkpoint): %w", err)
	}
	return nil
}

func (r *evalRun) close() { r.vm.Close() }

// Lower exports a prepared (QAT-trained or calibrated) model, a layer model (*graph.Model) or a
// language model (*graph.LM), to an integer model. For a layer model, see SiteParams for where the
// quantization parameters come from and LowerParams for the lowering; a language model lowers to
// the qmodel LM ops after its runtime points are calibrated on opt.Calib (see the package doc,
// "Language models"; NewLMEval then checks the result). The model's metadata records the QConfig
// name under "qconfig" unless opt.Meta sets it.
//
// Export folds BatchNorm as graph's FoldBN does, which is how qat.Trainer trains by default; a
// model trained with qat.Config.NoFoldBN had its weight quantizers on unfolded weights, and its
// learned (LSQ) weight scales do not fit the folded weights.
func Lower(p *qat.Prepared, opt Options) (*qmodel.Model, error) {
	if p == nil || p.Net == nil {
		return nil, errors.New("export: nil prepared model")
	}
	if _, ok := p.Net.(*graph.LM); ok {
		return lowerPreparedLM(p, opt)
	}
	if opt.Calib != nil || opt.Batch != 0 {
		return nil, fmt.Errorf("export: Options.Calib and Batch apply to language models; %q is a %s network", p.Net.Arch().Name, p.Net.Arch().Type)
	}
	sp, err := SiteParams(p)
	if err != nil {
		return nil, err
	}
	if _, ok := opt.Meta["qconfig"]; !ok {
		meta := map[string]string{"qconfig": p.Config.Name}
		for k, v := range opt.Meta {
			meta[k] = v
		}
		opt.Meta = meta
	}
	return LowerParams(p.Model, sp, opt)
}

// layout describes how an activation of the training graph is laid out in the runtime.
type layout struct {
	id    qmodel.TensorID
	shape []int // training per-example shape: (C,H,W) or (F)
	// chw is the (C,H,W) shape a vector was flattened from when its runtime order (H,W,C)
	// differs from the training order (C,H,W); nil when both orders agree.
	chw []int
	p   quant.Params // int8 parameters of the runtime tensor
}

type lowerer struct {
	opt Options
	m   *graph.Model
	sp  map[string]qat.SiteParams
	b   *qmodel.Builder
	act map[string]layout // by layer name (and graph.InputName)
	// orders is flatOrders(m): the one statement of which vectors keep a (C,H,W) order, shared
	// with Parity
	orders map[string][]int
	// clamps maps the op names of clampLow's identity convolutions to their site's tensor name
	clamps map[string]string
}

// LowerParams lowers model m with the given site parameters (normally from SiteParams) to a
// validated integer model. See the package documentation for the mapping of layers to ops.
func LowerParams(m *graph.Model, sp map[string]qat.SiteParams, opt Options) (*qmodel.Model, error) {
	if m == nil {
		return nil, errors.New("export: nil model")
	}
	if err := m.Err(); err != nil {
		return nil, err
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("%w: model %q has no layers", ErrUnsupported, m.Name)
	}
	name := opt.Name
	if name == "" {
		name = m.Name
	}
	lw := &lowerer{opt: opt, m: m, sp: sp, b: qmodel.NewBuilder(name), act: map[string]layout{}, clamps: map[string]string{}, orders: flatOrders(m)}
	lw.b.SetProducer(Producer)
	if opt.Labels != nil {
		lw.b.SetLabels(opt.Labels)
	}
	for k, v := range opt.Meta {
		lw.b.SetMeta(k, v)
	}
	if err := lw.input(opt); err != nil {
		return nil, err
	}
	for _, g := range m.Groups() {
		if err := lw.group(g); err != nil {
			return nil, err
		}
	}
	last := m.Layers[len(m.Layers)-1].Name
	out := lw.act[last]
	if out.chw != nil {
		return nil, fmt.Errorf("%w: the model output %q is a Flatten of %v: its element order would differ from training (H,W,C vs C,H,W); end the model with a Linear or flatten a (C,1,1) tensor", ErrUnsupported, last, out.chw)
	}
	id := out.id
	if opt.Softmax {
		id = lw.b.Softmax("softmax", id)
	}
	lw.b.Output(lw.b.Dequantize("output", id))
	qm, err := lw.b.Build()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	lw.tidyNames(qm)
	return qm, nil
}

// tidyNames renames the constants of low-bit activation pairs: the builder names them after their
// ops, so the computing op "X/q" has "X/q/weights" and the clamp op "X" has "X/weights"; they
// become "X/weights" (and "X/bias") and "X/clamp_weights".
func (lw *lowerer) tidyNames(qm *qmodel.Model) {
	for i := range qm.Ops {
		op := &qm.Ops[i]
		if base, ok := lw.clamps[op.Name]; ok {
			qm.Tensors[op.Inputs[1]].Name = base + "/clamp_weights"
		}
	}
	for i := range qm.Ops {
		op := &qm.Ops[i]
		base, ok := cutSuffix(op.Name, "/q")
		if !ok || (op.Kind != qmodel.OpConv2D && op.Kind != qmodel.OpFullyConnected) {
			continue
		}
		for _, t := range op.Inputs[1:] {
			if n, ok := strings.CutPrefix(qm.Tensors[t].Name, op.Name+"/"); ok {
				qm.Tensors[t].Name = base + "/" + n
			}
		}
	}
}

// TensorName returns the name of the runtime tensor that holds the activation of a quantizer site
// ("input" or "<op>.out") in models made by Lower.
func TensorName(site string) string {
	if site == graph.InputName {
		return "input"
	}
	if n, ok := cutSuffix(site, ".out"); ok {
		return n
	}
	return ""
}

func cutSuffix(s, suf string) (string, bool) {
	if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
		return s[:len(s)-len(suf)], true
	}
	return s, false
}

// flatOrders returns, for every layer whose output is a vector in a different element order in
// the runtime than in training, the (C,H,W) shape it was flattened from (see layout.chw): a
// Flatten of a (C,H,W) tensor with C > 1 and H*W > 1 starts one, Dropout, Add, BatchNorm and
// ReLU/ReLU6 pass it on, every other layer ends it. The lowering and Parity both read it.
func flatOrders(m *graph.Model) map[string][]int {
	out := map[string][]int{}
	for _, l := range m.Layers {
		in := out[l.Inputs[0]]
		switch l.Kind {
		case graph.KindFlatten:
			if s := l.InShape; len(s) == 3 && s[0] > 1 && s[1]*s[2] > 1 {
				out[l.Name] = s
			} else if in != nil {
				out[l.Name] = in
			}
		case graph.KindDropout, graph.KindAdd, graph.KindBatchNorm, graph.KindReLU, graph.KindReLU6:
			if in != nil {
				out[l.Name] = in
			}
		}
	}
	return out
}

// nhwc returns the runtime per-example shape of a training shape.
func nhwc(shape []int) []int {
	if len(shape) == 3 {
		return []int{shape[1], shape[2], shape[0]}
	}
	return slices.Clone(shape)
}

// actParams returns the int8 runtime parameters of an activation site: final, those of the tensor
// its consumers read, in which level q of the site's range [qmin, qmax] is q-128-qmin (so the
// int8 clamp at -128 is the site's qmin; an unsigned [0,255] site is the signed one shifted), and,
// for a site of fewer than 8 bits, hi: the parameters under which the op that computes it writes
// level q as q+127-qmax, so that its int8 clamp at 127 is the site's qmax. clampLow then moves hi
// to final exactly, clamping at qmin. Same scale in both; only the zero point moves. (An op
// with a fused ReLU/ReLU6 already clamps at level z >= qmin: its hi representation is final.)
func (lw *lowerer) actParams(site string) (final quant.Params, hi *quant.Params, err error) {
	sp, ok := lw.sp[site]
	if !ok {
		return final, nil, fmt.Errorf("export: no quantizer parameters for site %q", site)
	}
	if sp.Float {
		return final, nil, fmt.Errorf("%w: site %q is not quantized (float); the integer runtime needs every activation quantized", ErrUnsupported, site)
	}
	if len(sp.Params) != 1 {
		return final, nil, fmt.Errorf("%w: activation site %q has %d scales; activations must be per tensor", ErrUnsupported, site, len(sp.Params))
	}
	if l := sp.Range.Levels(); l > 256 || l < 2 {
		return final, nil, fmt.Errorf("%w: activation site %q has range %v; at most 8 bits", ErrUnsupported, site, sp.Range)
	}
	p := sp.Params[0]
	if !(p.Scale > 0) || math.IsInf(float64(p.Scale), 0) {
		return final, nil, fmt.Errorf("export: site %q has scale %v", site, p.Scale)
	}
	if p.ZeroPoint < sp.Range.Min || p.ZeroPoint > sp.Range.Max {
		return final, nil, fmt.Errorf("export: site %q has zero point %d outside %v", site, p.ZeroPoint, sp.Range)
	}
	final = quant.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint - 128 - sp.Range.Min}
	if sp.Range.Levels() < 256 {
		hi = &quant.Params{Scale: p.Scale, ZeroPoint: p.ZeroPoint + 127 - sp.Range.Max}
	}
	return final, hi, nil
}

func (lw *lowerer) input(opt Options) error {
	p, hi, err := lw.actParams(graph.InputName)
	if err != nil {
		return err
	}
	qname, qp := TensorName(graph.InputName), p
	if hi != nil {
		qname, qp = qname+"/q", *hi
	}
	shape := nhwc(lw.m.Input)
	var in qmodel.TensorID
	if opt.Uint8Input != nil {
		u := *opt.Uint8Input
		if !(u.Scale > 0) || u.ZeroPoint < 0 || u.ZeroPoint > 255 {
			return fmt.Errorf("export: uint8 input parameters %+v (scale must be > 0, zero point in [0,255])", u)
		}
		in = lw.b.Input("input_uint8", qmodel.Uint8, shape, qmodel.PerTensor(u.Scale, u.ZeroPoint))
	} else {
		in = lw.b.Input("input_float", qmodel.Float32, shape, nil)
	}
	id := lw.b.Quantize(qname, in, qp)
	if hi != nil {
		id = lw.clampLow(TensorName(graph.InputName), id, lw.m.Input, p)
	}
	lw.act[graph.InputName] = layout{id: id, shape: slices.Clone(lw.m.Input), p: p}
	return nil
}

func actOf(k graph.Kind) qmodel.Activation {
	switch k {
	case graph.KindReLU:
		return qmodel.ActReLU
	case graph.KindReLU6:
		return qmodel.ActReLU6
	}
	return qmodel.ActNone
}

func (lw *lowerer) in(l *graph.Layer, i int) (layout, error) {
	a, ok := lw.act[l.Inputs[i]]
	if !ok {
		return layout{}, fmt.Errorf("export: layer %q: input %q not lowered", l.Name, l.Inputs[i])
	}
	return a, nil
}

func (lw *lowerer) group(g graph.Group) error {
	l := lw.m.Layer(g.Op)
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: layer %q (%s): "+format, append([]any{ErrUnsupported, l.Name, l.Kind}, a...)...)
	}
	x, err := lw.in(l, 0)
	if err != nil {
		return err
	}
	switch g.Kind {
	case graph.KindDropout:
		lw.act[g.Out] = x
		return nil
	case graph.KindFlatten:
		y := x
		y.shape = slices.Clone(l.OutShape)
		y.chw = lw.orders[g.Out]
		if len(x.shape) == 3 {
			y.id = lw.b.Reshape(l.Name, x.id, l.OutShape)
		}
		lw.act[g.Out] = y
		return nil
	case graph.KindMaxPool2d:
		if x.chw != nil || len(x.shape) != 3 {
			return fail("needs a (C,H,W) input")
		}
		id := lw.b.MaxPool2D(l.Name, x.id, qmodel.PoolOptions{KernelH: l.Kernel, KernelW: l.Kernel,
			StrideH: l.Stride, StrideW: l.Stride, PadTop: l.Pad, PadLeft: l.Pad, PadBottom: l.Pad, PadRight: l.Pad})
		lw.act[g.Out] = layout{id: id, shape: slices.Clone(l.OutShape), p: x.p}
		return nil
	}
	final, hi, err := lw.actParams(g.Op + ".out")
	if err != nil {
		return err
	}
	if hi != nil && (g.Act != "" || g.Kind == graph.KindReLU || g.Kind == graph.KindReLU6) {
		// the fused ReLU clamps at level z (real 0) >= qmin: the hi representation is final
		final, hi = *hi, nil
	}
	name, out := l.Name, final
	if hi != nil {
		name, out = l.Name+"/q", *hi
	}
	y := layout{shape: slices.Clone(lw.m.Layer(g.Out).OutShape), chw: lw.orders[g.Out], p: final}
	switch g.Kind {
	case graph.KindConv2d:
		y.id, err = lw.conv(g, l, x, name, out)
	case graph.KindLinear:
		y.id, err = lw.linear(g, l, x, name, out)
	case graph.KindAvgPool2d, graph.KindGlobalAvgPool:
		y.id, err = lw.avgPool(g, l, x, name, out)
	case graph.KindAdd:
		var x2 layout
		if x2, err = lw.in(l, 1); err != nil {
			return err
		}
		if !slices.Equal(x.chw, x2.chw) {
			return fail("inputs %q and %q have different element orders", l.Inputs[0], l.Inputs[1])
		}
		y.id = lw.b.Add(name, x.id, x2.id, actOf(g.Act), out)
	case graph.KindBatchNorm, graph.KindReLU, graph.KindReLU6:
		y.id, err = lw.channelAffine(g, l, x, name, out)
	default:
		return fail("no integer lowering for a standalone %s (supported: conv2d/linear [+batchnorm] [+relu/relu6], add [+relu/relu6], batchnorm, relu, relu6, maxpool2d, avgpool2d, globalavgpool, flatten, dropout)", g.Kind)
	}
	if err != nil {
		return err
	}
	if hi != nil {
		y.id = lw.clampLow(l.Name, y.id, y.shape, final)
	}
	lw.act[g.Out] = y
	return nil
}

// clampLow adds the second op of a low-bit activation: an exact identity (depthwise 1x1 Conv2D,
// weight 1 of scale 1, multiplier 1) from the representation whose int8 clamp cut the site's
// qmax to final, whose int8 clamp cuts its qmin. A vector is reshaped to (1,1,F) and back.
func (lw *lowerer) clampLow(name string, in qmodel.TensorID, shape []int, final quant.Params) qmodel.TensorID {
	c := shape[0]
	vec := len(shape) == 1
	conv := name
	if vec {
		in, conv = lw.b.Reshape(name+"/to_image", in, []int{1, 1, c}), name+"/clamp"
	}
	ones := make([]int8, c)
	for i := range ones {
		ones[i] = 1
	}
	id := lw.b.Conv2D(conv, in, qmodel.Weights{Values: ones, Shape: []int{c, 1, 1, 1}, Scales: []float32{1}}, nil,
		qmodel.Conv2DOptions{Groups: c}, final)
	lw.clamps[conv] = name
	if vec {
		id = lw.b.Reshape(name, id, []int{c})
	}
	return id
}

// weights folds the group (Fold) and quantizes its folded weights with the trained weight
// quantizer: the folded parameters, the integer weights, their scales and whether they are int4.
func (lw *lowerer) weights(g graph.Group) (*Folded, []int8, []float32, bool, error) {
	f, err := Fold(lw.m, g)
	if err != nil {
		return nil, nil, nil, false, err
	}
	q, scales, int4, err := lw.quantWeights(g, f)
	return f, q, scales, int4, err
}

// quantWeights quantizes the folded weights f of a group with its trained weight quantizer.
func (lw *lowerer) quantWeights(g graph.Group, f *Folded) ([]int8, []float32, bool, error) {
	site := g.Op + ".weight"
	sp, ok := lw.sp[site]
	if !ok {
		return nil, nil, false, fmt.Errorf("export: no quantizer parameters for site %q", site)
	}
	if sp.Float {
		return nil, nil, false, fmt.Errorf("%w: weight site %q is not quantized (float)", ErrUnsupported, site)
	}
	out := f.Shape[0]
	if len(sp.Params) != 1 && len(sp.Params) != out {
		return nil, nil, false, fmt.Errorf("%w: weight site %q has %d scales for %d output channels (per-tensor or per-output-channel only)", ErrUnsupported, site, len(sp.Params), out)
	}
	if sp.Range.Min != -sp.Range.Max || sp.Range.Max > 127 || sp.Range.Max < 1 {
		return nil, nil, false, fmt.Errorf("%w: weight site %q has range %v; weights must be symmetric narrow-range (at most 8 bits)", ErrUnsupported, site, sp.Range)
	}
	scales := make([]float32, len(sp.Params))
	for i, p := range sp.Params {
		if p.ZeroPoint != 0 {
			return nil, nil, false, fmt.Errorf("%w: weight site %q channel %d has zero point %d; weights must be symmetric", ErrUnsupported, site, i, p.ZeroPoint)
		}
		scales[i] = p.Scale
	}
	q := make([]int8, len(f.Weight))
	per := len(f.Weight) / out
	for i, w := range f.Weight {
		s := scales[0]
		if len(scales) > 1 {
			s = scales[i/per]
		}
		q[i] = int8(quant.QuantizeValue(w, s, 0, sp.Range.Min, sp.Range.Max))
	}
	int4 := sp.Bits <= 4
	if !lw.opt.NoWeightRescale {
		storage := quant.WeightStorageMax(sp.Bits)
		n := len(q) / len(scales) // weights per scale
		for c := range scales {
			m := int8(0)
			for _, v := range q[c*n : (c+1)*n] {
				m = max(m, v, -v)
			}
			k := int8(quant.WeightRescale(int32(m), storage)) // the same reals on a k times finer grid
			if k == 1 {
				continue
			}
			for i := c * n; i < (c+1)*n; i++ {
				q[i] *= k
			}
			scales[c] = float32(float64(scales[c]) / float64(k))
		}
	}
	return q, scales, int4, nil
}

// biasInt quantizes a folded bias to int32 with scale inScale*wScale[c], the scale the file
// declares (qmodel's Builder computes it the same way).
func biasInt(op string, b []float32, inScale float32, wScales []float32) ([]int32, error) {
	if b == nil {
		return nil, nil
	}
	out := make([]int32, len(b))
	for c, v := range b {
		s := wScales[0]
		if len(wScales) > 1 {
			s = wScales[c]
		}
		bs := quant.BiasScale(inScale, s)
		r := quant.Round(float64(v) / float64(bs))
		if math.IsNaN(r) || r > math.MaxInt32/2 || r < -math.MaxInt32/2 {
			return nil, fmt.Errorf("export: layer %q: bias[%d] = %v is %v in units of its scale %g (outside the int32 accumulator's safe range)", op, c, v, r, bs)
		}
		out[c] = int32(r)
	}
	return out, nil
}

func (lw *lowerer) conv(g graph.Group, l *graph.Layer, x layout, name string, out quant.Params) (qmodel.TensorID, error) {
	if x.chw != nil || len(x.shape) != 3 {
		return 0, fmt.Errorf("%w: layer %q needs a (C,H,W) input", ErrUnsupported, l.Name)
	}
	inC := l.InShape[0]
	f, q, scales, int4, err := lw.weights(g)
	if err != nil {
		return 0, err
	}
	// OIHW -> [O, KH, KW, I/groups]: k = (kh*KW+kw)*I + i within a row. A grouped convolution
	// other than depthwise (groups = in = out channels) becomes a dense one whose weights are
	// zero outside each output channel's group: the same sums, exactly.
	o, ic, kh, kw := f.Shape[0], f.Shape[1], f.Shape[2], f.Shape[3]
	groups := l.Groups
	dense := groups != 1 && !(groups == inC && l.Out == inC)
	wc := ic
	if dense {
		wc, groups = inC, 1
	}
	ocg := o / l.Groups
	t := make([]int8, o*kh*kw*wc)
	for a := 0; a < o; a++ {
		off := 0
		if dense {
			off = (a / ocg) * ic // first input channel of the group of output channel a
		}
		for i := 0; i < ic; i++ {
			for h := 0; h < kh; h++ {
				for w := 0; w < kw; w++ {
					t[((a*kh+h)*kw+w)*wc+off+i] = q[((a*ic+i)*kh+h)*kw+w]
				}
			}
		}
	}
	ic = wc
	bias, err := biasInt(l.Name, f.Bias, x.p.Scale, scales)
	if err != nil {
		return 0, err
	}
	return lw.b.Conv2D(name, x.id, qmodel.Weights{Values: t, Shape: []int{o, kh, kw, ic}, Scales: scales, Int4: int4}, bias,
		qmodel.Conv2DOptions{StrideH: l.Stride, StrideW: l.Stride, PadTop: l.Pad, PadLeft: l.Pad, PadBottom: l.Pad, PadRight: l.Pad,
			Groups: groups, Act: actOf(g.Act)}, out), nil
}

func (lw *lowerer) linear(g graph.Group, l *graph.Layer, x layout, name string, out quant.Params) (qmodel.TensorID, error) {
	if len(x.shape) != 1 {
		return 0, fmt.Errorf("%w: layer %q needs a vector input", ErrUnsupported, l.Name)
	}
	f, q, scales, int4, err := lw.weights(g)
	if err != nil {
		return 0, err
	}
	n, k := f.Shape[0], f.Shape[1]
	if x.chw != nil {
		// The runtime vector is (H,W,C)-ordered; training's is (C,H,W): permute the columns so
		// that column (h*W+w)*C+c holds training column c*H*W+h*W+w.
		c, h, w := x.chw[0], x.chw[1], x.chw[2]
		if c*h*w != k {
			return 0, fmt.Errorf("export: layer %q: %d inputs, flattened from %v", l.Name, k, x.chw)
		}
		q = permuteCHW(q, n, x.chw, true) // each of the n rows is one (C,H,W) example
	}
	bias, err := biasInt(l.Name, f.Bias, x.p.Scale, scales)
	if err != nil {
		return 0, err
	}
	return lw.b.FullyConnected(name, x.id, qmodel.Weights{Values: q, Shape: []int{n, k}, Scales: scales, Int4: int4}, bias, actOf(g.Act), out), nil
}

// channelAffine lowers a standalone BatchNorm (y = a[c]*x + b[c] with a = gamma/sigma and
// b = beta - mean*a, running statistics) or a standalone ReLU/ReLU6 (a = 1, b = 0, the activation
// in the clamp) to a depthwise 1x1 Conv2D. Each channel's weight is +-127 with scale |a[c]|/127,
// so the weight is exact and the requantization rounds a*x+b once to the output scale. A vector
// input is reshaped to (1,1,F) and back.
func (lw *lowerer) channelAffine(g graph.Group, l *graph.Layer, x layout, base string, out quant.Params) (qmodel.TensorID, error) {
	c := x.shape[0]
	a := make([]float32, c)
	var b []float32
	for i := range a {
		a[i] = 1
	}
	if g.Kind == graph.KindBatchNorm {
		if g.Act != "" {
			return 0, fmt.Errorf("%w: layer %q: fused activation after a standalone BatchNorm", ErrUnsupported, l.Name)
		}
		var ps [4][]float32
		for i, r := range []graph.Role{graph.RoleGamma, graph.RoleBeta, graph.RoleRunningMean, graph.RoleRunningVar} {
			p := lw.m.LayerParam(l.Name, r)
			if p == nil {
				return 0, fmt.Errorf("export: BatchNorm %q has no %s", l.Name, r)
			}
			v, ok := p.Value.Data().([]float32)
			if !ok || len(v) != c {
				return 0, fmt.Errorf("export: BatchNorm %q %s has shape %v, want %d float32 channels", l.Name, r, p.Value.Shape(), c)
			}
			ps[i] = v
		}
		gamma, beta, mean, rv := ps[0], ps[1], ps[2], ps[3]
		b = make([]float32, c)
		for i := range a {
			a[i] = bnScale(gamma[i], rv[i], float32(l.Eps))
			b[i] = beta[i] - mean[i]*a[i]
		}
		if x.chw != nil { // per-feature parameters of a (C,H,W)-ordered vector, runtime order (H,W,C)
			a, b = hwcOrder(a, x.chw), hwcOrder(b, x.chw)
		}
	}
	w := make([]int8, c)
	scales := make([]float32, c)
	for i, v := range a {
		switch {
		case v > 0:
			w[i], scales[i] = 127, v/127
		case v < 0:
			w[i], scales[i] = -127, -v/127
		default:
			w[i], scales[i] = 0, quant.MinScale
		}
		if !(scales[i] >= quant.MinScale) || math.IsInf(float64(scales[i]), 0) {
			return 0, fmt.Errorf("export: layer %q channel %d: scale %v", l.Name, i, a[i])
		}
	}
	bias, err := biasInt(l.Name, b, x.p.Scale, scales)
	if err != nil {
		return 0, err
	}
	in, name := x.id, base
	vec := len(x.shape) == 1
	if vec {
		in, name = lw.b.Reshape(base+"/to_image", x.id, []int{1, 1, c}), base+"/affine"
	}
	act := actOf(g.Act)
	if g.Kind != graph.KindBatchNorm {
		act = actOf(g.Kind)
	}
	id := lw.b.Conv2D(name, in, qmodel.Weights{Values: w, Shape: []int{c, 1, 1, 1}, Scales: scales}, bias,
		qmodel.Conv2DOptions{Groups: c, Act: act}, out)
	if vec {
		id = lw.b.Reshape(base, id, []int{c})
	}
	return id, nil
}

// hwcOrder permutes a (C,H,W)-ordered vector to (H,W,C) order.
func hwcOrder(v []float32, chw []int) []float32 { return permuteCHW(v, 1, chw, true) }

// avgPool lowers average pooling. When the output keeps the input's parameters it is an
// AvgPool2D; otherwise (the usual case: the pool's output has its own trained quantizer) it is a
// depthwise convolution with all-one weights of scale 1/(KH*KW), whose requantization rounds the
// exact window sum once to the output scale, as the fake-quant graph does.
func (lw *lowerer) avgPool(g graph.Group, l *graph.Layer, x layout, base string, out quant.Params) (qmodel.TensorID, error) {
	if x.chw != nil || len(x.shape) != 3 {
		return 0, fmt.Errorf("%w: layer %q needs a (C,H,W) input", ErrUnsupported, l.Name)
	}
	c, kh, kw, stride := x.shape[0], l.Kernel, l.Kernel, l.Stride
	global := g.Kind == graph.KindGlobalAvgPool
	if global {
		kh, kw, stride = x.shape[1], x.shape[2], 1
	}
	if g.Act != "" {
		return 0, fmt.Errorf("%w: layer %q: fused activation after a pool", ErrUnsupported, l.Name)
	}
	name := base
	if global {
		name = base + "/pool"
	}
	var id qmodel.TensorID
	if out == x.p {
		id = lw.b.AvgPool2D(name, x.id, qmodel.PoolOptions{KernelH: kh, KernelW: kw, StrideH: stride, StrideW: stride})
	} else {
		ones := make([]int8, c*kh*kw)
		for i := range ones {
			ones[i] = 1
		}
		s := float32(1 / float64(kh*kw))
		scales := make([]float32, c)
		for i := range scales {
			scales[i] = s
		}
		id = lw.b.Conv2D(name, x.id, qmodel.Weights{Values: ones, Shape: []int{c, kh, kw, 1}, Scales: scales}, nil,
			qmodel.Conv2DOptions{StrideH: stride, StrideW: stride, Groups: c}, out)
	}
	if global {
		id = lw.b.Reshape(base, id, []int{c})
	}
	return id, nil
}
