package fakequant

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var lastID atomic.Uint64

// Quantizer is one fake-quantize node and its state: what the training graph uses (Out, the
// learnable nodes) and what export reads (Params, Range, Config).
//
// A Quantizer is not safe for concurrent use; one graph runs it at a time.
type Quantizer struct {
	// In is the input node, Out the fake-quantized node to use in its place.
	In, Out *G.Node
	// LogScale is the learnable log(scale) vector of LSQ (length K), nil otherwise.
	LogScale *G.Node
	// Offset is the learnable real-valued zero point of LSQ+ (length K), nil otherwise.
	Offset *G.Node
	// Alpha is PACT's learnable clipping level (length K), nil otherwise.
	Alpha *G.Node

	cfg    Config
	layout Layout
	rng    quant.Range
	xdims  int
	dtype  tensor.Dtype
	id     uint64

	st   *State // persistent state (observer range, fixed params, flags), possibly shared
	eval bool   // this graph only reads the observer state (SetEval)

	// Parameters used by the last forward (length K).
	scales []float32
	zps    []int32
	p32    typedParams[float32]
	p64    typedParams[float64]

	// The forward's aux codes are valid for input auxX (data at auxPtr) and parameters
	// fwdScales/fwdZps while auxOK.
	auxOK     bool
	auxX      *tensor.Dense
	auxPtr    uintptr
	fwdScales []float32
	fwdZps    []int32
	auxUsed   int // backward runs that used the aux codes (for tests)

	job    job       // the second half of a split pass (see parallel.go)
	alphas []float64 // PACT: floored alpha per slice

	// Observed: the per-batch scratch (the observer's range is in st).
	bLo, bHi []float64

	// scratch for the backward sums
	sumDS, sumClip, sumHigh []float64
	tmp                     []float64
}

// New inserts a fake-quantize node for x into g (x's graph; nil means x.Graph()) and returns its
// Quantizer. x must be a float32 or float64 tensor node of rank >= 1 with a known shape. Errors
// report an invalid Config, a Config that does not fit x's shape, or a Name already used by a
// quantizer in g.
//
// LSQ scales start from cfg.InitScale when set, else from LSQInitScale of x's current value when
// x has one (weights), else 1; LSQ+ offsets start at 0; PACT's alpha starts at cfg.InitScale*qmax
// or 6. Call InitLSQ, InitFromInput, SetRange or SetParams to initialise from data.
func New(g *G.ExprGraph, x *G.Node, cfg Config) (*Quantizer, error) {
	return NewShared(g, x, cfg, NewState())
}

// NewShared is New with the persistent state st, which other quantizers (of other graphs of the
// same model, with the same Config and number of slices) may share: see State.
func NewShared(g *G.ExprGraph, x *G.Node, cfg Config, st *State) (*Quantizer, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: %s: nil state", ErrConfig, cfg.Name)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if x == nil {
		return nil, fmt.Errorf("%w: %s: nil input node", ErrConfig, cfg.Name)
	}
	if g == nil {
		g = x.Graph()
	}
	if len(g.ByName(cfg.Name+".fq")) > 0 {
		return nil, fmt.Errorf("%w: name %q is already used by a quantizer in this graph", ErrConfig, cfg.Name)
	}
	dt := x.Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("%w: %s: dtype %v (want float32 or float64)", ErrConfig, cfg.Name, dt)
	}
	layout, err := NewLayout([]int(x.Shape()), cfg)
	if err != nil {
		return nil, err
	}
	k := layout.Slices()
	if err := st.attach(cfg.Name, k); err != nil {
		return nil, err
	}
	q := &Quantizer{
		In: x, cfg: cfg, st: st, layout: layout, rng: cfg.Range(), xdims: x.Dims(), dtype: dt,
		id:     lastID.Add(1),
		scales: make([]float32, k), zps: make([]int32, k), fwdScales: make([]float32, k), fwdZps: make([]int32, k),
		sumDS: make([]float64, k), sumClip: make([]float64, k), sumHigh: make([]float64, k), tmp: make([]float64, k),
	}
	inputs := G.Nodes{x}
	switch cfg.Method {
	case LSQ:
		init := make([]float64, k)
		switch {
		case cfg.InitScale > 0:
			for i := range init {
				init[i] = math.Log(cfg.InitScale)
			}
		case x.Value() != nil:
			s, err := LSQInitScale(valueFloats(x.Value()), layout, cfg.Qp())
			if err != nil {
				return nil, fmt.Errorf("fakequant: %s: initial value: %w", cfg.Name, err)
			}
			for i := range init {
				init[i] = math.Log(float64(s[i]))
			}
		}
		q.LogScale = G.NewVector(g, dt, G.WithShape(k), G.WithName(cfg.Name+".log_scale"), G.WithValue(vecOf(dt, init)))
		inputs = append(inputs, q.LogScale)
		if cfg.LearnOffset {
			q.Offset = G.NewVector(g, dt, G.WithShape(k), G.WithName(cfg.Name+".offset"), G.WithValue(vecOf(dt, make([]float64, k))))
			inputs = append(inputs, q.Offset)
		}
	case PACT:
		a := 6.0
		if cfg.InitScale > 0 {
			a = cfg.InitScale * float64(q.rng.Max)
		}
		init := make([]float64, k)
		for i := range init {
			init[i] = a
		}
		q.Alpha = G.NewVector(g, dt, G.WithShape(k), G.WithName(cfg.Name+".alpha"), G.WithValue(vecOf(dt, init)))
		inputs = append(inputs, q.Alpha)
	case Observed:
		q.bLo, q.bHi = make([]float64, k), make([]float64, k)
	}
	out, err := G.ApplyOpWithName(&fqOp{q: q}, cfg.Name+".fq", inputs...)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %s: %w", cfg.Name, err)
	}
	q.Out = out
	return q, nil
}

// Config returns the configuration.
func (q *Quantizer) Config() Config { return q.cfg }

// Range returns the integer range [qmin, qmax].
func (q *Quantizer) Range() quant.Range { return q.rng }

// Layout returns the slice layout (K = Layout().Slices()).
func (q *Quantizer) Layout() Layout { return q.layout }

// Bits returns the bit width.
func (q *Quantizer) Bits() int { return q.cfg.Bits }

// Learnables returns the learnable parameter nodes (to hand to G.Grad and the solver).
func (q *Quantizer) Learnables() G.Nodes {
	var ns G.Nodes
	for _, n := range []*G.Node{q.LogScale, q.Offset, q.Alpha} {
		if n != nil {
			ns = append(ns, n)
		}
	}
	return ns
}

// Freeze stops observer updates: the node quantizes with its current parameters (evaluation,
// after calibration). It has no effect on learned parameters, which change only through the solver.
// The flag is part of the State, shared with the quantizers of other graphs.
func (q *Quantizer) Freeze() { q.st.Freeze() }

// Unfreeze resumes observer updates (and drops parameters fixed by SetParams for Observed).
func (q *Quantizer) Unfreeze() { q.st.Unfreeze() }

// Frozen reports whether observer updates are stopped.
func (q *Quantizer) Frozen() bool { return q.st.Frozen() }

// SetEnabled switches fake quantization on or off. Disabled, the node passes its input through
// (gradient too; parameter gradients are zero) and observers are not updated. The flag is part of
// the State.
func (q *Quantizer) SetEnabled(on bool) { q.st.SetEnabled(on) }

// Enabled reports whether fake quantization is on.
func (q *Quantizer) Enabled() bool { return q.st.Enabled() }

// SetEval makes this quantizer (only this graph's) read the observer state without updating it:
// an evaluation graph that shares its State with a training graph.
func (q *Quantizer) SetEval(on bool) { q.eval = on }

// State returns the quantizer's persistent state.
func (q *Quantizer) State() *State { return q.st }

// GradScale returns LSQ's gradient scale g = 1/sqrt(N*Qp) (1 with NoGradScale).
func (q *Quantizer) GradScale() float64 {
	if q.cfg.NoGradScale {
		return 1
	}
	return 1 / math.Sqrt(float64(q.layout.PerSlice())*float64(q.cfg.Qp()))
}

// ErrNotCalibrated reports an Observed quantizer that has seen no data and has no parameters set.
var ErrNotCalibrated = errors.New("fakequant: observer has seen no data")

// Params returns the K (scale, zero point) pairs that the forward pass uses now, computed from the
// current values of the learnable nodes or the observer state. Export reads these.
func (q *Quantizer) Params() ([]quant.Params, error) {
	if err := q.computeParams(q.paramValues()); err != nil {
		return nil, err
	}
	ps := make([]quant.Params, len(q.scales))
	for i := range ps {
		ps[i] = quant.Params{Scale: q.scales[i], ZeroPoint: q.zps[i]}
	}
	return ps, nil
}

// ObserverRange returns copies of the observed per-slice [min, max] (Observed only).
func (q *Quantizer) ObserverRange() (lo, hi []float64, err error) {
	if q.cfg.Method != Observed {
		return nil, nil, fmt.Errorf("fakequant: %s: not an observed quantizer (use Params for learned parameters)", q.cfg.Name)
	}
	lo, hi, ok := q.st.Observed()
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotCalibrated, q.cfg.Name)
	}
	return lo, hi, nil
}

// SetParams sets the K (scale, zero point) pairs. LSQ stores log(scale) and, with LearnOffset, the
// zero point in Offset; without LearnOffset the zero point must equal the fixed one (0 for
// SymmetricNarrow and AsymmetricSigned, qmin for AsymmetricUnsigned). PACT stores
// alpha = scale*qmax (zero point 0). Observed fixes the parameters and freezes the observer until
// Unfreeze, and sets the observer range to the one the parameters represent,
// [scale*(qmin-z), scale*(qmax-z)], from which the observer continues after Unfreeze. Scales must be finite and >= quant.MinScale. On float32 graphs LSQ keeps log(scale)
// in float32, so the scale read back by Params can differ from the one set by a relative 1e-5.
func (q *Quantizer) SetParams(ps []quant.Params) error {
	k := q.layout.Slices()
	if len(ps) != k {
		return fmt.Errorf("fakequant: %s: %d params for %d slices (give one per slice, Layout().Slices())", q.cfg.Name, len(ps), k)
	}
	for i, p := range ps {
		if !(p.Scale >= quant.MinScale) || math.IsInf(float64(p.Scale), 0) {
			return fmt.Errorf("fakequant: %s: slice %d: scale %v below quant.MinScale or not finite", q.cfg.Name, i, p.Scale)
		}
		if p.ZeroPoint < q.rng.Min || p.ZeroPoint > q.rng.Max || (q.cfg.Symmetric() && p.ZeroPoint != 0) {
			return fmt.Errorf("fakequant: %s: slice %d: zero point %d invalid for %v", q.cfg.Name, i, p.ZeroPoint, q.rng)
		}
		if q.cfg.Method == LSQ && !q.cfg.Symmetric() && !q.cfg.LearnOffset && p.ZeroPoint != q.fixedZero() {
			return fmt.Errorf("fakequant: %s: slice %d: zero point %d but the offset is not learned (fixed %d)", q.cfg.Name, i, p.ZeroPoint, q.fixedZero())
		}
	}
	switch q.cfg.Method {
	case LSQ:
		ls := make([]float64, k)
		zs := make([]float64, k)
		for i, p := range ps {
			ls[i] = math.Log(float64(p.Scale))
			zs[i] = float64(p.ZeroPoint)
		}
		setFloats(q.LogScale.Value(), ls)
		if q.Offset != nil {
			setFloats(q.Offset.Value(), zs)
		}
	case PACT:
		as := make([]float64, k)
		for i, p := range ps {
			as[i] = float64(p.Scale) * float64(q.rng.Max)
		}
		setFloats(q.Alpha.Value(), as)
	case Observed:
		// Fix the parameters, and start the observer from the range they represent, so that after
		// Unfreeze it continues from there.
		st := q.st
		for i, p := range ps {
			q.scales[i], q.zps[i] = p.Scale, p.ZeroPoint
			st.scales[i], st.zps[i] = p.Scale, p.ZeroPoint
			st.lo[i] = float64(p.Scale) * float64(q.rng.Min-p.ZeroPoint)
			st.hi[i] = float64(p.Scale) * float64(q.rng.Max-p.ZeroPoint)
		}
		st.fixed, st.frozen, st.init = true, true, true
	}
	return nil
}

// SetRange sets the parameters from per-slice real ranges [lo[k], hi[k]] with quant.SymmetricParams or
// quant.AsymmetricParams (PACT: alpha = max(hi, 0)). For Observed it also sets the observer state.
// Use it with a calibration observer (MinMaxObserver, PercentileObserver, MSEObserver).
func (q *Quantizer) SetRange(lo, hi []float64) error {
	k := q.layout.Slices()
	if len(lo) != k || len(hi) != k {
		return fmt.Errorf("fakequant: %s: ranges of length %d/%d for %d slices (give one per slice, Layout().Slices())", q.cfg.Name, len(lo), len(hi), k)
	}
	if q.cfg.Method == Observed {
		for i := range lo {
			if _, err := q.paramsFromRange(lo[i], hi[i]); err != nil {
				return err
			}
		}
		copy(q.st.lo, lo)
		copy(q.st.hi, hi)
		q.st.init, q.st.fixed = true, false
		return nil
	}
	ps := make([]quant.Params, k)
	for i := range ps {
		p, err := q.paramsFromRange(lo[i], hi[i])
		if err != nil {
			return err
		}
		if q.cfg.Method == LSQ && !q.cfg.LearnOffset {
			p.ZeroPoint = q.fixedZero()
			if !q.cfg.Symmetric() { // keep the range's extent with the fixed zero point
				p.Scale = float32(max(math.Abs(lo[i]), math.Abs(hi[i])) / float64(q.rng.Max-q.fixedZero()))
				if !(p.Scale >= quant.MinScale) {
					p.Scale = quant.MinScale
				}
			}
		}
		ps[i] = p
	}
	return q.SetParams(ps)
}

// InitLSQ initialises the learned parameters from data v of the input's shape (for activations: a
// representative batch). LSQ: s = LSQInitScale(v) = 2*mean|v|/sqrt(Qp) per slice (the offset is left
// as it is). PACT: alpha = max(v) per slice (floored like every alpha). Observed quantizers have no
// learned parameters: InitLSQ returns an error for them.
func (q *Quantizer) InitLSQ(v tensor.Tensor) error {
	if q.cfg.Method == Observed {
		return fmt.Errorf("fakequant: %s: InitLSQ on an observed quantizer (it has no learned parameters: use SetRange or let it observe data)", q.cfg.Name)
	}
	if !v.Shape().Eq(tensor.Shape(q.layout.Shape)) {
		return fmt.Errorf("fakequant: %s: InitLSQ shape %v, want %v", q.cfg.Name, v.Shape(), q.layout.Shape)
	}
	data := valueFloats(v)
	if q.cfg.Method == PACT {
		o := NewMinMaxObserver(q.layout, 0)
		if err := o.Observe(data); err != nil {
			return fmt.Errorf("fakequant: %s: %w", q.cfg.Name, err)
		}
		_, hi, _ := o.Range()
		for i := range hi {
			hi[i] = pactAlphaFloor(hi[i], q.rng.Max)
		}
		setFloats(q.Alpha.Value(), hi)
		return nil
	}
	s, err := LSQInitScale(data, q.layout, q.cfg.Qp())
	if err != nil {
		return fmt.Errorf("fakequant: %s: %w", q.cfg.Name, err)
	}
	ls := make([]float64, len(s))
	for i := range s {
		ls[i] = math.Log(float64(s[i]))
	}
	setFloats(q.LogScale.Value(), ls)
	return nil
}

// InitFromInput calls InitLSQ with the current value of the input node (e.g. after one forward run
// with the quantizer disabled).
func (q *Quantizer) InitFromInput() error {
	v, ok := q.In.Value().(tensor.Tensor)
	if !ok || v == nil {
		return fmt.Errorf("fakequant: %s: input node has no tensor value (run the graph once with the quantizer disabled, or use InitLSQ)", q.cfg.Name)
	}
	return q.InitLSQ(v)
}

// fixedZero is the zero point of an LSQ quantizer without a learned offset: 0 for the symmetric
// schemes (SymmetricNarrow, PACT) and for AsymmetricSigned, qmin for AsymmetricUnsigned (also 0).
func (q *Quantizer) fixedZero() int32 {
	if q.cfg.Scheme == AsymmetricUnsigned && !q.cfg.Symmetric() {
		return q.rng.Min
	}
	return 0
}

func (q *Quantizer) paramsFromRange(lo, hi float64) (quant.Params, error) {
	return paramsFromRange(q.cfg, q.rng, lo, hi)
}

func paramsFromRange(cfg Config, r quant.Range, lo, hi float64) (quant.Params, error) {
	if cfg.Method == PACT {
		return quant.AsymmetricParams(0, max(hi, 0), r)
	}
	if cfg.Symmetric() {
		return quant.SymmetricParams(lo, hi, r)
	}
	return quant.AsymmetricParams(lo, hi, r)
}

func (q *Quantizer) numParams() int {
	switch q.cfg.Method {
	case LSQ:
		if q.cfg.LearnOffset {
			return 2
		}
		return 1
	case PACT:
		return 1
	}
	return 0
}

// paramValues returns the current values of the learnable nodes in input order.
func (q *Quantizer) paramValues() []G.Value {
	var vs []G.Value
	for _, n := range q.Learnables() {
		vs = append(vs, n.Value())
	}
	return vs
}

// input checks the op inputs and returns x.
func (q *Quantizer) input(vals []G.Value, arity int) (*tensor.Dense, error) {
	if len(vals) != arity {
		return nil, fmt.Errorf("fakequant: %s: %d inputs, want %d", q.cfg.Name, len(vals), arity)
	}
	x, ok := vals[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("fakequant: %s: input is %T, want *tensor.Dense", q.cfg.Name, vals[0])
	}
	if x.Dtype() != q.dtype || !x.Shape().Eq(tensor.Shape(q.layout.Shape)) {
		return nil, fmt.Errorf("fakequant: %s: input %v %v, want %v %v", q.cfg.Name, x.Dtype(), x.Shape(), q.dtype, q.layout.Shape)
	}
	if x.IsView() {
		return nil, fmt.Errorf("fakequant: %s: input is a view; materialise it first", q.cfg.Name)
	}
	return x, nil
}

// computeParams fills q.scales/q.zps (and the typed copies) from parameter values (LSQ, PACT) or
// from the observer state (Observed).
func (q *Quantizer) computeParams(pv []G.Value) error {
	k := q.layout.Slices()
	switch q.cfg.Method {
	case LSQ:
		if err := readParam(pv, 0, q.dtype, q.tmp); err != nil {
			return fmt.Errorf("fakequant: %s: log-scale: %w", q.cfg.Name, err)
		}
		for i, t := range q.tmp {
			if math.IsNaN(t) || math.IsInf(t, 0) {
				return fmt.Errorf("%w: node %s: log-scale of slice %d is %v", ErrNonFinite, q.cfg.Name, i, t)
			}
			q.scales[i] = q.cfg.learnedScale(t)
		}
		if q.cfg.LearnOffset {
			if err := readParam(pv, 1, q.dtype, q.tmp); err != nil {
				return fmt.Errorf("fakequant: %s: offset: %w", q.cfg.Name, err)
			}
			for i, z := range q.tmp {
				if math.IsNaN(z) || math.IsInf(z, 0) {
					return fmt.Errorf("%w: node %s: offset of slice %d is %v", ErrNonFinite, q.cfg.Name, i, z)
				}
				q.zps[i] = zeroFromOffset(z, q.rng.Min, q.rng.Max)
			}
		} else {
			z := q.fixedZero()
			for i := range q.zps {
				q.zps[i] = z
			}
		}
	case PACT:
		if len(q.alphas) != k {
			q.alphas = make([]float64, k)
		}
		if err := readParam(pv, 0, q.dtype, q.tmp); err != nil {
			return fmt.Errorf("fakequant: %s: alpha: %w", q.cfg.Name, err)
		}
		for i, a := range q.tmp {
			if math.IsNaN(a) || math.IsInf(a, 0) {
				return fmt.Errorf("%w: node %s: alpha of slice %d is %v", ErrNonFinite, q.cfg.Name, i, a)
			}
			q.scales[i] = pactScale(a, q.rng.Max)
			q.alphas[i] = pactAlphaFloor(a, q.rng.Max)
		}
		for i := range q.zps {
			q.zps[i] = 0
		}
	case Observed:
		st := q.st
		if st.fixed {
			copy(q.scales, st.scales)
			copy(q.zps, st.zps)
			break
		}
		if !st.init {
			return fmt.Errorf("%w: %s", ErrNotCalibrated, q.cfg.Name)
		}
		for i := range q.scales {
			p, err := q.paramsFromRange(st.lo[i], st.hi[i])
			if err != nil {
				return fmt.Errorf("fakequant: %s: slice %d: %w", q.cfg.Name, i, err)
			}
			q.scales[i], q.zps[i] = p.Scale, p.ZeroPoint
		}
	}
	q.setTyped()
	return nil
}

// setTyped refreshes the typed copies of q.scales and q.zps.
func (q *Quantizer) setTyped() {
	if q.dtype == tensor.Float32 {
		q.p32.set(q.scales, q.zps, q.rng)
	} else {
		q.p64.set(q.scales, q.zps, q.rng)
	}
}

// readParam copies the K elements of parameter value number idx into dst (without allocating).
func readParam(pv []G.Value, idx int, dt tensor.Dtype, dst []float64) error {
	if idx >= len(pv) || pv[idx] == nil {
		return errors.New("no value")
	}
	t, ok := pv[idx].(*tensor.Dense)
	if !ok || t.Shape().TotalSize() != len(dst) || t.Dtype() != dt {
		return fmt.Errorf("value %v is not a %v vector of length %d", pv[idx], dt, len(dst))
	}
	if dt == tensor.Float32 {
		for i, v := range t.Float32s()[:len(dst)] {
			dst[i] = float64(v)
		}
	} else {
		copy(dst, t.Float64s())
	}
	return nil
}

func vecOf(dt tensor.Dtype, v []float64) *tensor.Dense {
	if dt == tensor.Float32 {
		f := make([]float32, len(v))
		for i := range v {
			f[i] = float32(v[i])
		}
		return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(f))
	}
	return tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(append([]float64(nil), v...)))
}

func setFloats(v G.Value, src []float64) {
	t := v.(*tensor.Dense)
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(src[i])
		}
	case []float64:
		copy(d, src)
	}
}

// valueFloats returns a float64 copy of a float tensor's data (nil for other values).
func valueFloats(v G.Value) []float64 {
	t, ok := v.(tensor.Tensor)
	if !ok {
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
	}
	return nil
}

func (c Config) hashString() string {
	return fmt.Sprintf("%s b=%d %v %v ax=%d gs=%d %v %v off=%t m=%g init=%g ng=%t sp=%t f16=%t",
		c.Name, c.Bits, c.Scheme, c.Granularity, c.Axis, c.GroupSize, c.Method, c.Grad, c.LearnOffset,
		c.Momentum, c.InitScale, c.NoGradScale, c.SinglePass, c.ScaleF16)
}
