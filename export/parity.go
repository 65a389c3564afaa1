package export

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// LayerParity compares one quantized activation (a quantizer site) of the fake-quant graph with
// the same tensor of the integer runtime, in integer levels (LSB) of the site's quantizer.
type LayerParity struct {
	Site     string // quantizer site, e.g. "conv1.out"
	Tensor   string // runtime tensor name
	Elements int    // compared elements (batch included)
	MaxLSB   int    // largest |q_fake - q_int|
	Exact    float64
	Within1  float64 // share of elements with |q_fake - q_int| <= 1
	// Local* compare the layer alone: its runtime op(s) run on the fake-quant graph's input
	// values, so earlier layers' differences do not count. LocalMaxLSB is -1 where not measured
	// (the model input, Add).
	LocalMaxLSB  int
	LocalExact   float64
	LocalWithin1 float64
}

// Report is the result of Parity.
type Report struct {
	Model     string
	Batch     int
	Layers    []LayerParity // in graph order
	Agree     int           // examples whose argmax output agrees
	Agreement float64       // Agree/Batch
	// Labeled reports whether FakeAccuracy and IntAccuracy were measured (ParityLabeled).
	Labeled      bool
	FakeAccuracy float64 // accuracy of the fake-quant graph
	IntAccuracy  float64 // accuracy of the integer runtime
	// FloatAccuracy is the accuracy of the float model (no quantization) on the same examples,
	// measured with the labels.
	FloatAccuracy float64
}

// Thresholds decide whether a Report passes. The zero value means the defaults; a negative
// MinWithin1 or MinAgreement turns that check off.
type Thresholds struct {
	// MinWithin1 is the minimum share of elements within 1 LSB for every layer (default 0.99).
	MinWithin1 float64
	// MaxLSB is the largest difference allowed anywhere (0: no limit).
	MaxLSB int
	// MinAgreement is the minimum share of examples whose predictions agree (default 0.99).
	MinAgreement float64
	// MaxLocalLSB is the largest difference allowed for a layer alone (LayerParity.LocalMaxLSB;
	// 0: no limit). Every lowered op is expected within 1 LSB of its fake-quant counterpart.
	MaxLocalLSB int
	// MaxAccuracyDrop is the largest drop, in accuracy (a share: 0.2 is 20 points), of the
	// fake-quant model below the float model that a labelled report accepts (default 0.2; a
	// negative value turns the check off). Quantization that loses more has collapsed: parity
	// alone cannot see it, since the integer runtime faithfully reproduces a broken fake-quant
	// model.
	MaxAccuracyDrop float64
}

// DefaultThresholds are the thresholds Check applies for zero fields. They catch lowering bugs
// (wrong layout, scale or zero point give far worse numbers) without failing on the legitimate
// rounding differences that add up through a network: W8A8 models typically reach >= 99.99% of
// elements within 1 LSB everywhere; 4-bit weights make the runtime's bias rounding (which the
// fake-quant graph does not simulate) larger, and a layer whose scale is finer than its input's
// amplifies upstream 1-LSB differences (see the W4A8 case in the tests, about 96%).
var DefaultThresholds = Thresholds{MinWithin1: 0.99, MinAgreement: 0.99, MaxAccuracyDrop: 0.2}

// ErrParity is wrapped by the error Check returns when parity is worse than the thresholds.
var ErrParity = errors.New("export: parity check failed")

// Check returns an error naming the first layer whose parity is worse than t, or nil.
func (r *Report) Check(t Thresholds) error {
	if t.MinWithin1 == 0 {
		t.MinWithin1 = DefaultThresholds.MinWithin1
	}
	if t.MinAgreement == 0 {
		t.MinAgreement = DefaultThresholds.MinAgreement
	}
	if t.MaxAccuracyDrop == 0 {
		t.MaxAccuracyDrop = DefaultThresholds.MaxAccuracyDrop
	}
	if r.Labeled && t.MaxAccuracyDrop > 0 && r.FloatAccuracy-r.FakeAccuracy > t.MaxAccuracyDrop {
		return fmt.Errorf("%w: quantization collapsed the model: fake-quant accuracy %.2f%% against float %.2f%% on %d examples (a drop of %.2f points, more than %.2f)",
			ErrImplausible, 100*r.FakeAccuracy, 100*r.FloatAccuracy, r.Batch, 100*(r.FloatAccuracy-r.FakeAccuracy), 100*t.MaxAccuracyDrop)
	}
	for _, l := range r.Layers {
		if l.Within1 < t.MinWithin1 {
			return fmt.Errorf("%w: layer %q (tensor %q): %.4f%% of %d elements within 1 LSB, want >= %.4f%% (max diff %d LSB; the layer alone: %s)",
				ErrParity, l.Site, l.Tensor, 100*l.Within1, l.Elements, 100*t.MinWithin1, l.MaxLSB, l.localString())
		}
		if t.MaxLocalLSB > 0 && l.LocalMaxLSB > t.MaxLocalLSB {
			return fmt.Errorf("%w: layer %q (tensor %q) alone, on the fake-quant graph's inputs: max difference %d LSB > %d", ErrParity, l.Site, l.Tensor, l.LocalMaxLSB, t.MaxLocalLSB)
		}
		if t.MaxLSB > 0 && l.MaxLSB > t.MaxLSB {
			return fmt.Errorf("%w: layer %q (tensor %q): max difference %d LSB > %d", ErrParity, l.Site, l.Tensor, l.MaxLSB, t.MaxLSB)
		}
	}
	if r.Agreement < t.MinAgreement {
		return fmt.Errorf("%w: predictions agree on %d of %d examples (%.4f%%), want >= %.4f%%",
			ErrParity, r.Agree, r.Batch, 100*r.Agreement, 100*t.MinAgreement)
	}
	return nil
}

func (l LayerParity) localString() string {
	if l.LocalMaxLSB < 0 {
		return "not measured"
	}
	return fmt.Sprintf("max diff %d LSB, %.4f%% within 1 LSB", l.LocalMaxLSB, 100*l.LocalWithin1)
}

// String formats the report as a table.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "parity of %q on %d examples (fake-quant graph vs integer runtime)\n", r.Model, r.Batch)
	fmt.Fprintf(&b, "%-20s %10s | %8s %9s %9s | %-27s\n", "site", "elements", "max LSB", "exact %", "<=1 LSB %", "layer alone: max, exact %")
	for _, l := range r.Layers {
		local := "-"
		if l.LocalMaxLSB >= 0 {
			local = fmt.Sprintf("%d, %.4f", l.LocalMaxLSB, 100*l.LocalExact)
		}
		fmt.Fprintf(&b, "%-20s %10d | %8d %9.4f %9.4f | %s\n", l.Site, l.Elements, l.MaxLSB, 100*l.Exact, 100*l.Within1, local)
	}
	fmt.Fprintf(&b, "prediction agreement: %d/%d (%.4f%%)\n", r.Agree, r.Batch, 100*r.Agreement)
	if r.Labeled {
		fmt.Fprintf(&b, "accuracy: fake-quant %.4f%%, integer %.4f%% (difference %+.4f points); float %.4f%%\n",
			100*r.FakeAccuracy, 100*r.IntAccuracy, 100*(r.IntAccuracy-r.FakeAccuracy), 100*r.FloatAccuracy)
	}
	return b.String()
}

// ParityChunk is the number of examples Parity runs through both models at a time.
const ParityChunk = 256

// Parity runs the fake-quant evaluation graph of p (BN folded, activation observers frozen) and
// the integer model qm (made by Lower from p) on the same examples and compares every quantized
// activation site and the predictions. x holds n examples in the training layout (NCHW), one
// after another; they are processed ParityChunk at a time. For a uint8-input model the examples
// are first quantized to uint8 with the model input's parameters, and the fake-quant graph sees
// the dequantized bytes.
func Parity(p *qat.Prepared, qm *qmodel.Model, x []float32, n int) (*Report, error) {
	return ParityLabeled(p, qm, x, n, nil)
}

type siteStats struct {
	n, exact, within, maxd int
	local                  *siteStats
}

func (a *siteStats) add(want []float32, got []int8, fp quant.Params, rg quant.Range, shift int32) {
	a.n += len(got)
	for i, v := range want {
		q := quant.QuantizeValue(v, fp.Scale, fp.ZeroPoint, rg.Min, rg.Max) + shift
		d := int(q) - int(got[i])
		if d < 0 {
			d = -d
		}
		a.maxd = max(a.maxd, d)
		if d == 0 {
			a.exact++
		}
		if d <= 1 {
			a.within++
		}
	}
}

// ParityLabeled is Parity that also measures the accuracy of both models against labels
// (len n), reported in Report.FakeAccuracy and Report.IntAccuracy, and the float model's
// (Report.FloatAccuracy), which Report.Check compares with the fake-quant accuracy.
func ParityLabeled(p *qat.Prepared, qm *qmodel.Model, x []float32, n int, labels []int) (*Report, error) {
	if p == nil || qm == nil {
		return nil, errors.New("export: Parity needs a prepared model and an integer model")
	}
	m := p.Model
	per := 1
	for _, d := range m.Input {
		per *= d
	}
	if n < 1 || len(x) != n*per {
		return nil, fmt.Errorf("export: parity batch: %d values for %d examples of %v", len(x), n, m.Input)
	}
	if labels != nil && len(labels) != n {
		return nil, fmt.Errorf("export: %d labels for %d examples", len(labels), n)
	}
	md, err := infer.Load(qm)
	if err != nil {
		return nil, fmt.Errorf("export: loading the integer model: %w", err)
	}
	sess := md.NewSessionWith(infer.SessionOptions{KeepIntermediate: true})
	chunk := min(n, ParityChunk)
	r, err := newEvalRun(p, chunk)
	if err != nil {
		return nil, err
	}
	defer r.close()
	rep := &Report{Model: qm.Name, Batch: n}
	stats := map[string]*siteStats{}
	orders := flatOrders(m)
	if r.local, err = localOps(m, qm); err != nil {
		return nil, err
	}
	r.orders = orders
	outLayer := map[string]string{}
	for _, g := range m.Groups() {
		outLayer[g.Op+".out"] = g.Out
	}
	var order []string
	var fakeOK, intOK int
	xin := make([]float32, chunk*per)
	for start := 0; start < n; start += chunk {
		b := min(chunk, n-start)
		copy(xin, x[start*per:(start+b)*per])
		for i := b; i < chunk; i++ { // pad a short last chunk with its last example
			copy(xin[i*per:(i+1)*per], x[(start+b-1)*per:(start+b)*per])
		}
		nh := toNHWC(xin[:b*per], b, m.Input)
		var outF []float32
		if md.InputType() == qmodel.Uint8 {
			ip := qm.Tensors[qm.Inputs[0]].Quant.Params()
			u := make([]byte, len(nh))
			for i, v := range nh {
				u[i] = byte(quant.QuantizeValue(v, ip.Scale, ip.ZeroPoint, 0, 255))
				nh[i] = quant.DequantizeValue(int32(u[i]), ip.Scale, ip.ZeroPoint)
			}
			copy(xin, toNCHW(nh, b, m.Input))
			outF, err = sess.RunUint8(u, b)
		} else {
			outF, err = sess.Run(nh, b)
		}
		if err != nil {
			return nil, fmt.Errorf("export: running the integer model: %w", err)
		}
		copy(r.n.XVal.Data().([]float32), xin)
		if err := r.run(); err != nil {
			return nil, err
		}
		for _, s := range p.Sites {
			if s.Kind != graph.SiteActivation {
				continue
			}
			node, ok := r.n.Sites[s.Name]
			if !ok {
				continue // float site
			}
			a := stats[s.Name]
			if a == nil {
				a = &siteStats{}
				stats[s.Name] = a
				order = append(order, s.Name)
			}
			if err := compareSite(r, sess, s, orders[outLayer[s.Name]], node.Value().Data(), b, chunk, a); err != nil {
				return nil, err
			}
		}
		logits := r.n.Out.Value().Data().([]float32)
		k := len(logits) / chunk
		if len(outF) != b*k {
			return nil, fmt.Errorf("export: runtime output has %d values per example, fake-quant output %d", len(outF)/b, k)
		}
		for i := 0; i < b; i++ {
			fa, ia := argmax(logits[i*k:(i+1)*k]), argmax(outF[i*k:(i+1)*k])
			if fa == ia {
				rep.Agree++
			}
			if labels != nil {
				if fa == labels[start+i] {
					fakeOK++
				}
				if ia == labels[start+i] {
					intOK++
				}
			}
		}
	}
	for _, name := range order {
		a := stats[name]
		lp := LayerParity{Site: name, Tensor: TensorName(name), Elements: a.n, MaxLSB: a.maxd,
			Exact: float64(a.exact) / float64(a.n), Within1: float64(a.within) / float64(a.n), LocalMaxLSB: -1}
		if l := a.local; l != nil {
			lp.LocalMaxLSB, lp.LocalExact, lp.LocalWithin1 = l.maxd, float64(l.exact)/float64(l.n), float64(l.within)/float64(l.n)
		}
		rep.Layers = append(rep.Layers, lp)
	}
	rep.Agreement = float64(rep.Agree) / float64(n)
	if labels != nil {
		rep.Labeled = true
		rep.FakeAccuracy = float64(fakeOK) / float64(n)
		rep.IntAccuracy = float64(intOK) / float64(n)
		if rep.FloatAccuracy, err = floatAccuracy(m, x, labels); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// compareSite adds the comparison of one activation site on the first b examples of a chunk.
// chw is the (C,H,W) shape a vector site was flattened from when the runtime holds it in (H,W,C)
// order (nil otherwise).
func compareSite(r *evalRun, sess *infer.Session, s graph.Site, chw []int, data any, b, chunk int, a *siteStats) error {
	sp, err := r.p.Params(s.Name)
	if err != nil {
		return err
	}
	name := TensorName(s.Name)
	got, gp, err := sess.Int8Tensor(name)
	if err != nil {
		return fmt.Errorf("export: site %q: %w", s.Name, err)
	}
	fv, ok := data.([]float32)
	if !ok || len(fv)*b != len(got)*chunk {
		return fmt.Errorf("export: site %q: fake-quant value has %d elements for %d examples, runtime tensor %q has %d for %d", s.Name, len(fv), chunk, name, len(got), b)
	}
	shape := s.Shape
	if chw != nil {
		shape = chw
	}
	want := toNHWC(fv[:len(got)], b, shape)
	fp := sp.Params[0]
	// the runtime holds level q as q+shift: shift = -128-qmin, or 127-qmax for a low-bit site
	// computed by an op with a fused ReLU (see actParams)
	shift := gp.ZeroPoint - fp.ZeroPoint
	if fp.Scale != gp.Scale || (shift != -128-sp.Range.Min && shift != 127-sp.Range.Max) {
		return fmt.Errorf("export: site %q: runtime tensor %q has parameters %+v, the quantizer %+v %v", s.Name, name, gp, fp, sp.Range)
	}
	a.add(want, got, fp, sp.Range, shift)
	if lo := r.local[s.Name]; lo != nil {
		in := r.n.Nodes[lo.input].Value().Data().([]float32)
		in = in[:len(in)/chunk*b]
		lg, err := lo.run(in, lo.inShape, r.orders[lo.input], b)
		if err != nil {
			return fmt.Errorf("export: site %q alone: %w", s.Name, err)
		}
		if a.local == nil {
			a.local = &siteStats{}
		}
		a.local.add(want, lg, fp, sp.Range, shift)
	}
	return nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] || math.IsNaN(float64(v[best])) {
			best = i
		}
	}
	return best
}

// toNHWC converts a batch of (C,H,W) examples to (H,W,C); other shapes are copied.
func toNHWC(x []float32, batch int, shape []int) []float32 { return permuteCHW(x, batch, shape, true) }

// toNCHW reverses toNHWC.
func toNCHW(x []float32, batch int, shape []int) []float32 { return permuteCHW(x, batch, shape, false) }

// permuteCHW moves a batch of examples of a 3-D shape (C,H,W) between (C,H,W) and (H,W,C)
// order: to (H,W,C) when toHWC, back otherwise. Other shapes are copied.
func permuteCHW[T any](x []T, batch int, shape []int, toHWC bool) []T {
	out := make([]T, len(x))
	if len(shape) != 3 {
		copy(out, x)
		return out
	}
	c, hw := shape[0], shape[1]*shape[2]
	n := c * hw
	for b := 0; b < batch; b++ {
		src, dst := x[b*n:(b+1)*n], out[b*n:(b+1)*n]
		for cc := 0; cc < c; cc++ {
			for i := 0; i < hw; i++ {
				if toHWC {
					dst[i*c+cc] = src[cc*hw+i]
				} else {
					dst[cc*hw+i] = src[i*c+cc]
				}
			}
		}
	}
	return out
}

// Export checks p (CheckPlausible), lowers it (Lower), checks parity on the batch x (Parity, Report.Check with t) and returns
// the model and the report. When parity fails it returns the model, the report and an error
// wrapping ErrParity that names the layer, so a caller may still inspect or force-write the model.
func Export(p *qat.Prepared, opt Options, x []float32, batch int, t Thresholds) (*qmodel.Model, *Report, error) {
	if err := CheckPlausible(p); err != nil {
		return nil, nil, err
	}
	qm, err := Lower(p, opt)
	if err != nil {
		return nil, nil, err
	}
	rep, err := Parity(p, qm, x, batch)
	if err != nil {
		return qm, nil, err
	}
	return qm, rep, rep.Check(t)
}
