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
}

// Report is the result of Parity.
type Report struct {
	Model     string
	Batch     int
	Layers    []LayerParity // in graph order
	Agree     int           // examples whose argmax output agrees
	Agreement float64       // Agree/Batch
}

// Thresholds decide whether a Report passes. The zero value means the defaults.
type Thresholds struct {
	// MinWithin1 is the minimum share of elements within 1 LSB for every layer (default 0.99).
	MinWithin1 float64
	// MaxLSB is the largest difference allowed anywhere (0: no limit).
	MaxLSB int
	// MinAgreement is the minimum share of examples whose predictions agree (default 0.99).
	MinAgreement float64
}

// DefaultThresholds are the thresholds Check applies for zero fields. They catch lowering bugs
// (wrong layout, scale or zero point give far worse numbers) without failing on the legitimate
// rounding differences that add up through a network: W8A8 models typically reach >= 99.99% of
// elements within 1 LSB everywhere; 4-bit weights make the runtime's bias rounding (which the
// fake-quant graph does not simulate) larger, and a layer whose scale is finer than its input's
// amplifies upstream 1-LSB differences (see the W4A8 case in the tests, about 96%).
var DefaultThresholds = Thresholds{MinWithin1: 0.99, MinAgreement: 0.99}

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
	for _, l := range r.Layers {
		if l.Within1 < t.MinWithin1 {
			return fmt.Errorf("%w: layer %q (tensor %q): %.4f%% of %d elements within 1 LSB, want >= %.4f%% (max diff %d LSB)",
				ErrParity, l.Site, l.Tensor, 100*l.Within1, l.Elements, 100*t.MinWithin1, l.MaxLSB)
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

// String formats the report as a table.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "parity of %q on %d examples (fake-quant graph vs integer runtime)\n", r.Model, r.Batch)
	fmt.Fprintf(&b, "%-24s %10s %8s %9s %9s\n", "site", "elements", "max LSB", "exact %", "<=1 LSB %")
	for _, l := range r.Layers {
		fmt.Fprintf(&b, "%-24s %10d %8d %9.4f %9.4f\n", l.Site, l.Elements, l.MaxLSB, 100*l.Exact, 100*l.Within1)
	}
	fmt.Fprintf(&b, "prediction agreement: %d/%d (%.4f%%)\n", r.Agree, r.Batch, 100*r.Agreement)
	return b.String()
}

// Parity runs the fake-quant evaluation graph of p (BN folded, activation observers frozen) and
// the integer model qm (made by Lower from p) on the same batch and compares every quantized
// activation site and the predictions. x holds batch examples in the training layout (NCHW),
// one after another; for a uint8-input model the examples are quantized to uint8 with the
// model input's parameters first, and the fake-quant graph sees the dequantized bytes.
func Parity(p *qat.Prepared, qm *qmodel.Model, x []float32, batch int) (*Report, error) {
	if p == nil || qm == nil {
		return nil, errors.New("export: Parity needs a prepared model and an integer model")
	}
	m := p.Model
	per := 1
	for _, d := range m.Input {
		per *= d
	}
	if batch < 1 || len(x) != batch*per {
		return nil, fmt.Errorf("export: parity batch: %d values for %d examples of %v", len(x), batch, m.Input)
	}
	md, err := infer.Load(qm)
	if err != nil {
		return nil, fmt.Errorf("export: loading the integer model: %w", err)
	}
	sess := md.NewSessionWith(infer.SessionOptions{KeepIntermediate: true})
	xin := append([]float32(nil), x...)
	nh := toNHWC(xin, batch, m.Input)
	var outF []float32
	if md.InputType() == qmodel.Uint8 {
		t := &qm.Tensors[qm.Inputs[0]]
		u := make([]byte, len(nh))
		ip := t.Quant.Params()
		for i, v := range nh {
			u[i] = byte(quant.QuantizeValue(v, ip.Scale, ip.ZeroPoint, 0, 255))
			nh[i] = quant.DequantizeValue(int32(u[i]), ip.Scale, ip.ZeroPoint)
		}
		xin = toNCHW(nh, batch, m.Input)
		outF, err = sess.RunUint8(u, batch)
	} else {
		outF, err = sess.Run(nh, batch)
	}
	if err != nil {
		return nil, fmt.Errorf("export: running the integer model: %w", err)
	}

	r, err := newEvalRun(p, batch)
	if err != nil {
		return nil, err
	}
	defer r.close()
	copy(r.n.XVal.Data().([]float32), xin)
	if err := r.run(); err != nil {
		return nil, err
	}
	rep := &Report{Model: qm.Name, Batch: batch}
	for _, s := range p.Sites {
		if s.Kind != graph.SiteActivation {
			continue
		}
		node, ok := r.n.Sites[s.Name]
		if !ok {
			continue // float site
		}
		sp, err := p.Params(r.nq, s.Name)
		if err != nil {
			return nil, err
		}
		name := TensorName(s.Name)
		got, gp, err := sess.Int8Tensor(name)
		if err != nil {
			return nil, fmt.Errorf("export: site %q: %w", s.Name, err)
		}
		fv, ok := node.Value().Data().([]float32)
		if !ok || len(fv) != len(got) {
			return nil, fmt.Errorf("export: site %q: fake-quant value has %d elements, runtime tensor %q has %d", s.Name, len(fv), name, len(got))
		}
		want := toNHWC(fv, batch, s.Shape)
		fp := sp.Params[0]
		shift := -128 - sp.Range.Min
		if fp.ZeroPoint+shift != gp.ZeroPoint || fp.Scale != gp.Scale {
			return nil, fmt.Errorf("export: site %q: runtime tensor %q has parameters %+v, the quantizer %+v", s.Name, name, gp, fp)
		}
		lp := LayerParity{Site: s.Name, Tensor: name, Elements: len(got)}
		var exact, within int
		for i, v := range want {
			q := quant.QuantizeValue(v, fp.Scale, fp.ZeroPoint, sp.Range.Min, sp.Range.Max) + shift
			d := int(q) - int(got[i])
			if d < 0 {
				d = -d
			}
			lp.MaxLSB = max(lp.MaxLSB, d)
			if d == 0 {
				exact++
			}
			if d <= 1 {
				within++
			}
		}
		lp.Exact = float64(exact) / float64(len(got))
		lp.Within1 = float64(within) / float64(len(got))
		rep.Layers = append(rep.Layers, lp)
	}
	logits := r.n.Out.Value().Data().([]float32)
	k := len(logits) / batch
	if len(outF) != batch*k {
		return nil, fmt.Errorf("export: runtime output has %d values, fake-quant output %d", len(outF), len(logits))
	}
	for i := 0; i < batch; i++ {
		if argmax(logits[i*k:(i+1)*k]) == argmax(outF[i*k:(i+1)*k]) {
			rep.Agree++
		}
	}
	rep.Agreement = float64(rep.Agree) / float64(batch)
	return rep, nil
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
func toNHWC(x []float32, batch int, shape []int) []float32 {
	out := make([]float32, len(x))
	if len(shape) != 3 {
		copy(out, x)
		return out
	}
	c, h, w := shape[0], shape[1], shape[2]
	n := c * h * w
	for b := 0; b < batch; b++ {
		src, dst := x[b*n:(b+1)*n], out[b*n:(b+1)*n]
		for cc := 0; cc < c; cc++ {
			for i := 0; i < h*w; i++ {
				dst[i*c+cc] = src[cc*h*w+i]
			}
		}
	}
	return out
}

// toNCHW reverses toNHWC.
func toNCHW(x []float32, batch int, shape []int) []float32 {
	out := make([]float32, len(x))
	if len(shape) != 3 {
		copy(out, x)
		return out
	}
	c, h, w := shape[0], shape[1], shape[2]
	n := c * h * w
	for b := 0; b < batch; b++ {
		src, dst := x[b*n:(b+1)*n], out[b*n:(b+1)*n]
		for cc := 0; cc < c; cc++ {
			for i := 0; i < h*w; i++ {
				dst[cc*h*w+i] = src[i*c+cc]
			}
		}
	}
	return out
}

// Export lowers p (Lower), checks parity on the batch x (Parity, Report.Check with t) and returns
// the model and the report. When parity fails it returns the model, the report and an error
// wrapping ErrParity that names the layer, so a caller may still inspect or force-write the model.
func Export(p *qat.Prepared, opt Options, x []float32, batch int, t Thresholds) (*qmodel.Model, *Report, error) {
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
