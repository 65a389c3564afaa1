package qat

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/opbuf"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BiasMode selects whether the fake-quant graph simulates the int32 bias of the integer runtime.
type BiasMode int

const (
	// BiasAuto simulates bias quantization for groups whose weights have fewer than 8 bits, where
	// the bias scale s_in*s_w[c] is coarse enough to matter.
	BiasAuto BiasMode = iota
	// BiasOn simulates bias quantization for every quantized weighted group.
	BiasOn
	// BiasOff keeps biases float in the fake-quant graph.
	BiasOff
)

// QuantizeBias implements graph.BiasQuantizer: when the QConfig's BiasQuant asks for it and both
// the input activation and the weight of the group are quantized, the bias b gets the forward
//
//	b_q[c] = Round(b[c] / s_b[c]) * s_b[c],   s_b[c] = s_in * s_w[c]
//
// with a straight-through gradient (db = dL/db_q), where s_w[c] is the weight scale the exporter
// stores: a channel whose integer levels use at most half of the storage range (int8: 127, int4:
// 7) is stored with scale s_w/k, k = storage/max|level| (export.Options.NoWeightRescale off, the
// default). The scales are read when the node runs; while an activation observer is still
// updating in single-pass mode (its range lags one batch) or a quantizer is disabled, the bias
// passes through unchanged. With per-group or asymmetric weights (no per-channel bias scale) the
// bias passes through under BiasAuto and BiasOn is an error.
func (nq *NetQuant) QuantizeBias(in, w graph.Site, wq, b *G.Node) (*G.Node, error) {
	stW, stIn := nq.p.state[w.Name], nq.p.state[in.Name]
	qw, qin := nq.Qs[w.Name], nq.Qs[in.Name]
	if stW == nil || stIn == nil || !stW.on || !stIn.on || qw == nil || qin == nil {
		return b, nil
	}
	switch nq.p.Config.BiasQuant {
	case BiasOff:
		return b, nil
	case BiasAuto:
		if stW.cfg.Bits >= 8 {
			return b, nil
		}
	}
	if stW.cfg.Granularity == fakequant.PerGroup || stW.cfg.Scheme != fakequant.SymmetricNarrow {
		// one bias scale per output channel, s_in*s_w[c], needs symmetric per-channel/tensor weights
		if nq.p.Config.BiasQuant == BiasOn {
			return nil, fmt.Errorf("qat: %s: BiasOn needs symmetric per-channel or per-tensor weights (%v %v)", w.Name, stW.cfg.Scheme, stW.cfg.Granularity)
		}
		return b, nil
	}
	return G.ApplyOp(&biasQuantOp{in: qin, w: qw, bits: stW.cfg.Bits, shape: b.Shape().Clone(), wshape: wq.Shape().Clone(), name: w.Name}, b, wq)
}

// biasQuantOp is (b, wq) -> b_q; differentiable with respect to b only (straight through).
type biasQuantOp struct {
	in, w         *fakequant.Quantizer
	bits          int
	shape, wshape tensor.Shape
	name          string
	out           opbuf.Buffer
	// scratch of scales, reused from run to run: the weight as float32, s_w per scale, s_b per channel
	wv, sw, sb []float32
}

func (op *biasQuantOp) Arity() int { return 2 }
func (op *biasQuantOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 1, Of: a}, G.TensorType{Dims: len(op.wshape), Of: a}, G.TensorType{Dims: 1, Of: a})
}
func (op *biasQuantOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *biasQuantOp) ReturnsPtr() bool                               { return false }
func (op *biasQuantOp) CallsExtern() bool                              { return false }
func (op *biasQuantOp) OverwritesInput() int                           { return -1 }
func (op *biasQuantOp) String() string                                 { return "BiasQuant{" + op.name + "}" }
func (op *biasQuantOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "BiasQuant{%s %d %v %v %p %p}", op.name, op.bits, op.shape, op.wshape, op.in, op.w)
}
func (op *biasQuantOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op *biasQuantOp) DiffWRT(n int) []bool { return []bool{true, false}[:n] }
func (op *biasQuantOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, nil}, nil
}

func (op *biasQuantOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }

func (op *biasQuantOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	if len(vals) != 2 {
		return nil, fmt.Errorf("qat: %v: %d inputs", op, len(vals))
	}
	b, ok1 := vals[0].(*tensor.Dense)
	wq, ok2 := vals[1].(*tensor.Dense)
	if !ok1 || !ok2 || !b.Shape().Eq(op.shape) {
		return nil, fmt.Errorf("qat: %v: inputs %T, %T", op, vals[0], vals[1])
	}
	out, err := op.out.Output(prealloc, b.Dtype(), op.shape, b, wq)
	if err != nil {
		return nil, fmt.Errorf("qat: %v: %w", op, err)
	}
	s, err := op.scales(wq)
	if err != nil {
		return nil, err
	}
	switch d := out.Data().(type) {
	case []float32:
		copy(d, b.Data().([]float32))
		for c := range d[:len(s)] { // s is nil while the bias passes through
			d[c] = float32(roundTo(float64(d[c]), s[c]))
		}
	case []float64:
		copy(d, b.Data().([]float64))
		for c := range d[:len(s)] { // s is nil while the bias passes through
			d[c] = roundTo(d[c], s[c])
		}
	default:
		return nil, fmt.Errorf("qat: %v: dtype %v", op, out.Dtype())
	}
	return out, nil
}

// roundTo rounds v to a multiple of the bias scale bs exactly as the exporter computes the int32
// bias (quant.Round of v/bs in float64) and returns the real value of that integer.
func roundTo(v float64, bs float32) float64 {
	return quant.Round(v/float64(bs)) * float64(bs)
}

// scales returns s_in*s_w[c] per output channel, as the exporter computes the bias scale, or nil
// when the bias should pass through.
func (op *biasQuantOp) scales(wq *tensor.Dense) ([]float32, error) {
	if !op.in.Enabled() || !op.w.Enabled() || (op.in.Config().SinglePass && !op.in.Frozen()) {
		return nil, nil
	}
	pin, err := op.in.Params()
	if err == nil && len(pin) != 1 {
		err = fmt.Errorf("qat: %v: %d input scales", op, len(pin))
	}
	if err != nil {
		if errors.Is(err, fakequant.ErrNotCalibrated) {
			return nil, nil
		}
		return nil, err
	}
	pw, err := op.w.Params()
	if err != nil {
		if errors.Is(err, fakequant.ErrNotCalibrated) {
			return nil, nil
		}
		return nil, err
	}
	C := op.shape[0]
	if len(pw) != 1 && len(pw) != C {
		return nil, fmt.Errorf("qat: %v: %d weight scales for %d channels", op, len(pw), C)
	}
	// wq holds the fake-quantized weight level*s_w: dividing by s_w gives the level back
	op.wv = resize(op.wv, wq.Shape().TotalSize())
	wv := op.wv
	switch d := wq.Data().(type) {
	case []float32:
		copy(wv, d)
	case []float64:
		for i, v := range d {
			wv[i] = float32(v)
		}
	}
	rng := op.w.Range()
	storage := quant.WeightStorageMax(op.bits)
	per := len(wv) / len(pw)
	op.sw = resize(op.sw, len(pw))
	sw := op.sw
	for j, p := range pw {
		m := int32(0)
		for _, v := range wv[j*per : (j+1)*per] {
			q := quant.QuantizeValue(v, p.Scale, 0, rng.Min, rng.Max)
			m = max(m, q, -q)
		}
		// the exporter's rescale (export.Options.NoWeightRescale off)
		sw[j] = float32(float64(p.Scale) / float64(quant.WeightRescale(m, storage)))
	}
	op.sb = resize(op.sb, C)
	out := op.sb
	for c := range out {
		s := sw[0]
		if len(sw) > 1 {
			s = sw[c]
		}
		out[c] = quant.BiasScale(pin[0].Scale, s)
	}
	return out, nil
}

// resize returns s with length n, reusing its array when it is large enough.
func resize(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
