package qmodel

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/qatgo/qatgo/quant"
)

// Limits that Validate enforces. They bound what a runtime must allocate for a model whose file is
// small: constants are bounded by the file size, activations (which have no data) by these limits.
const (
	MaxRank               = 8         // dimensions per tensor
	MaxStringLen          = 1 << 16   // bytes per name, label or metadata string
	MaxActivationElements = 1 << 24   // elements per sample of one activation tensor
	MaxTotalActivations   = 1 << 26   // elements per sample of all activation tensors together
	MaxConstElements      = 1<<31 - 1 // elements of one constant (further bounded by the file size)
	maxKernel             = 1 << 12   // pool/conv kernel size, stride and pad bound
)

// Validate checks the whole model: tensor types, shapes, data sizes and quantization parameters,
// op attributes, op wiring (every input defined before use, every output produced once), the output
// shape and parameters of each op, and that every derived requantization multiplier is representable.
// A nil error means the runtime can execute the model without further checks.
func (m *Model) Validate() error {
	if err := checkString("model name", m.Name); err != nil {
		return err
	}
	if err := checkString("producer", m.Producer); err != nil {
		return err
	}
	for i, l := range m.Labels {
		if err := checkString(fmt.Sprintf("label %d", i), l); err != nil {
			return err
		}
	}
	for k, v := range m.Meta {
		if err := checkString("metadata key", k); err != nil {
			return err
		}
		if err := checkString(fmt.Sprintf("metadata %q", k), v); err != nil {
			return err
		}
	}
	if _, err := m.Requant(); err != nil {
		return err
	}
	if len(m.Tensors) == 0 {
		return fmt.Errorf("qmodel: model has no tensors")
	}
	if len(m.Ops) == 0 {
		return fmt.Errorf("qmodel: model has no ops")
	}
	names := make(map[string]int, len(m.Tensors))
	totalAct := 0
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if err := validateTensor(t); err != nil {
			return err
		}
		if j, dup := names[t.Name]; dup {
			return fmt.Errorf("qmodel: tensors %d and %d are both named %q", j, i, t.Name)
		}
		names[t.Name] = i
		if !t.IsConst() {
			totalAct += t.NumElements()
			if totalAct > MaxTotalActivations {
				return fmt.Errorf("qmodel: activations need more than %d elements per sample", MaxTotalActivations)
			}
		}
	}

	defined := make([]bool, len(m.Tensors))
	if len(m.Inputs) == 0 {
		return fmt.Errorf("qmodel: model has no inputs")
	}
	if len(m.Outputs) == 0 {
		return fmt.Errorf("qmodel: model has no outputs")
	}
	for _, in := range m.Inputs {
		if in < 0 || in >= len(m.Tensors) {
			return fmt.Errorf("qmodel: model input index %d out of range [0,%d)", in, len(m.Tensors))
		}
		t := &m.Tensors[in]
		if t.IsConst() {
			return fmt.Errorf("qmodel: model input %q is a constant", t.Name)
		}
		if defined[in] {
			return fmt.Errorf("qmodel: model input %q listed twice", t.Name)
		}
		switch t.DType {
		case Float32, Uint8, Int8, Int32:
		default:
			return fmt.Errorf("qmodel: model input %q has type %v (want float32, uint8, int8 or int32 token ids)", t.Name, t.DType)
		}
		defined[in] = true
	}
	for i := range m.Ops {
		if err := m.validateOp(i, defined); err != nil {
			return fmt.Errorf("qmodel: op %d (%v %q): %w", i, m.Ops[i].Kind, m.Ops[i].Name, err)
		}
	}
	for i := range m.Tensors {
		if !m.Tensors[i].IsConst() && !defined[i] {
			return fmt.Errorf("qmodel: activation tensor %q is neither a model input nor produced by an op", m.Tensors[i].Name)
		}
	}
	seenOut := make(map[int]bool, len(m.Outputs))
	for _, o := range m.Outputs {
		if o < 0 || o >= len(m.Tensors) {
			return fmt.Errorf("qmodel: model output index %d out of range [0,%d)", o, len(m.Tensors))
		}
		if m.Tensors[o].IsConst() {
			return fmt.Errorf("qmodel: model output %q is a constant", m.Tensors[o].Name)
		}
		if seenOut[o] {
			return fmt.Errorf("qmodel: model output %q listed twice", m.Tensors[o].Name)
		}
		seenOut[o] = true
	}
	return m.validateLM()
}

func checkString(what, s string) error {
	if len(s) > MaxStringLen {
		return fmt.Errorf("qmodel: %s longer than %d bytes", what, MaxStringLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("qmodel: %s is not valid UTF-8", what)
	}
	return nil
}

func validateTensor(t *Tensor) error {
	if t.Name == "" {
		return fmt.Errorf("qmodel: tensor with empty name")
	}
	if err := checkString("tensor name", t.Name); err != nil {
		return err
	}
	if !t.DType.Valid() {
		return fmt.Errorf("qmodel: tensor %q: invalid data type %d", t.Name, uint8(t.DType))
	}
	if len(t.Shape) == 0 || len(t.Shape) > MaxRank {
		return fmt.Errorf("qmodel: tensor %q: rank %d outside [1,%d]", t.Name, len(t.Shape), MaxRank)
	}
	limit := MaxActivationElements
	if t.IsConst() {
		limit = MaxConstElements
	}
	n := int64(1) // int64: no overflow on 32-bit platforms
	for _, d := range t.Shape {
		if d < 1 || d > limit {
			return fmt.Errorf("qmodel: tensor %q: dimension %d outside [1,%d] in shape %v", t.Name, d, limit, t.Shape)
		}
		n *= int64(d)
		if n > int64(limit) {
			return fmt.Errorf("qmodel: tensor %q: shape %v has more than %d elements", t.Name, t.Shape, limit)
		}
	}
	if t.IsConst() && int64(len(t.Data)) != int64(t.DType.DataSize(int(n))) {
		return fmt.Errorf("qmodel: tensor %q: %d data bytes, shape %v of %v needs %d", t.Name, len(t.Data), t.Shape, t.DType, t.DType.DataSize(int(n)))
	}
	if t.DType == Int4 && !t.IsConst() {
		return fmt.Errorf("qmodel: tensor %q: int4 is only supported for constants", t.Name)
	}
	q := t.Quant
	if q == nil {
		if t.DType != Float32 {
			return fmt.Errorf("qmodel: tensor %q: %v tensor without quantization parameters", t.Name, t.DType)
		}
		return nil
	}
	if t.DType == Float32 {
		return fmt.Errorf("qmodel: tensor %q: float32 tensor with quantization parameters", t.Name)
	}
	if len(q.Scales) == 0 || len(q.Scales) != len(q.ZeroPoints) {
		return fmt.Errorf("qmodel: tensor %q: %d scales and %d zero points", t.Name, len(q.Scales), len(q.ZeroPoints))
	}
	if q.Axis == -1 {
		if len(q.Scales) != 1 {
			return fmt.Errorf("qmodel: tensor %q: per-tensor parameters with %d scales", t.Name, len(q.Scales))
		}
	} else {
		if q.Axis < 0 || q.Axis >= len(t.Shape) {
			return fmt.Errorf("qmodel: tensor %q: quantization axis %d outside shape %v", t.Name, q.Axis, t.Shape)
		}
		if len(q.Scales) != t.Shape[q.Axis] {
			return fmt.Errorf("qmodel: tensor %q: %d scales for axis %d of size %d", t.Name, len(q.Scales), q.Axis, t.Shape[q.Axis])
		}
	}
	r, _ := t.DType.levelRange()
	for i, s := range q.Scales {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("qmodel: tensor %q: scale[%d] = %v, want finite and > 0", t.Name, i, s)
		}
		z := q.ZeroPoints[i]
		if z < r.Min || z > r.Max {
			return fmt.Errorf("qmodel: tensor %q: zero point[%d] = %d outside %v for %v", t.Name, i, z, r, t.DType)
		}
		if t.DType == Int32 && z != 0 {
			return fmt.Errorf("qmodel: tensor %q: int32 zero point[%d] = %d, want 0", t.Name, i, z)
		}
	}
	return nil
}

func shapeEq(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// validateOp checks op i and marks its outputs defined.
func (m *Model) validateOp(i int, defined []bool) error {
	op := &m.Ops[i]
	if err := checkString("op name", op.Name); err != nil {
		return err
	}
	if err := checkLMAttrsZero(op); err != nil {
		return err
	}
	if op.Kind.IsLM() {
		return m.validateLMOp(op, defined)
	}
	nIn, nOut := 1, 1
	switch op.Kind {
	case OpConv2D, OpFullyConnected:
		if len(op.Inputs) != 2 && len(op.Inputs) != 3 {
			return fmt.Errorf("%d inputs, want 2 (input, weights) or 3 (input, weights, bias)", len(op.Inputs))
		}
		nIn = len(op.Inputs)
	case OpAdd:
		nIn = 2
	case OpQuantize, OpMaxPool2D, OpAvgPool2D, OpReshape, OpSoftmax, OpDequantize:
	default:
		return fmt.Errorf("unknown op kind %d", uint8(op.Kind))
	}
	if len(op.Inputs) != nIn || len(op.Outputs) != nOut {
		return fmt.Errorf("%d inputs and %d outputs, want %d and %d", len(op.Inputs), len(op.Outputs), nIn, nOut)
	}
	for _, t := range op.Inputs {
		if t < 0 || t >= len(m.Tensors) {
			return fmt.Errorf("input index %d out of range [0,%d)", t, len(m.Tensors))
		}
	}
	for _, t := range op.Outputs {
		if t < 0 || t >= len(m.Tensors) {
			return fmt.Errorf("output index %d out of range [0,%d)", t, len(m.Tensors))
		}
	}
	// The activation input(s): defined before use, not constants.
	nAct := 1
	if op.Kind == OpAdd {
		nAct = 2
	}
	for _, t := range op.Inputs[:nAct] {
		if m.Tensors[t].IsConst() {
			return fmt.Errorf("input %q is a constant, want an activation", m.Tensors[t].Name)
		}
		if !defined[t] {
			return fmt.Errorf("input %q is used before it is produced", m.Tensors[t].Name)
		}
	}
	for _, t := range op.Inputs[nAct:] {
		if !m.Tensors[t].IsConst() {
			return fmt.Errorf("input %q must be a constant", m.Tensors[t].Name)
		}
	}
	outIdx := op.Outputs[0]
	out := &m.Tensors[outIdx]
	if out.IsConst() {
		return fmt.Errorf("output %q is a constant", out.Name)
	}
	if defined[outIdx] {
		return fmt.Errorf("output %q is already defined (a model input or produced by an earlier op)", out.Name)
	}

	// Attributes that do not apply must be zero.
	spatial := op.Kind == OpConv2D || op.Kind == OpMaxPool2D || op.Kind == OpAvgPool2D
	pool := op.Kind == OpMaxPool2D || op.Kind == OpAvgPool2D
	if !spatial && (op.StrideH|op.StrideW|op.PadTop|op.PadLeft|op.PadBottom|op.PadRight) != 0 {
		return fmt.Errorf("stride/padding set on %v", op.Kind)
	}
	if !pool && (op.KernelH|op.KernelW) != 0 {
		return fmt.Errorf("kernel size set on %v (only pools have one)", op.Kind)
	}
	if op.Kind != OpConv2D && op.Groups != 0 {
		return fmt.Errorf("groups set on %v", op.Kind)
	}
	switch op.Kind {
	case OpConv2D, OpFullyConnected, OpMaxPool2D, OpAvgPool2D, OpAdd:
		if op.Act > ActReLU6 {
			return fmt.Errorf("invalid fused activation %d", uint8(op.Act))
		}
	default:
		if op.Act != ActNone {
			return fmt.Errorf("fused activation %v on %v", op.Act, op.Kind)
		}
	}

	in := &m.Tensors[op.Inputs[0]]
	var err error
	switch op.Kind {
	case OpQuantize:
		err = m.checkQuantize(in, out)
	case OpDequantize:
		if in.DType == Int32 {
			err = checkInt32Act(in)
		} else {
			err = checkAct(in, "input", -1)
		}
		if err == nil {
			if out.DType != Float32 {
				err = fmt.Errorf("output %q is %v, want float32", out.Name, out.DType)
			} else if !shapeEq(in.Shape, out.Shape) {
				err = fmt.Errorf("output shape %v != input shape %v", out.Shape, in.Shape)
			}
		}
	case OpConv2D:
		err = m.checkConv(op, in, out)
	case OpFullyConnected:
		err = m.checkFC(op, in, out)
	case OpMaxPool2D, OpAvgPool2D:
		err = checkPool(op, in, out)
	case OpAdd:
		err = checkAdd(in, &m.Tensors[op.Inputs[1]], out)
	case OpReshape:
		if err = checkAct(in, "input", -1); err == nil {
			if err = checkAct(out, "output", -1); err == nil {
				if in.NumElements() != out.NumElements() {
					err = fmt.Errorf("reshape %v -> %v changes the element count", in.Shape, out.Shape)
				} else if in.Quant.Params() != out.Quant.Params() {
					err = fmt.Errorf("reshape changes quantization parameters %v -> %v", in.Quant.Params(), out.Quant.Params())
				}
			}
		}
	case OpSoftmax:
		if err = checkAct(in, "input", -1); err == nil {
			if err = checkAct(out, "output", -1); err == nil {
				if !shapeEq(in.Shape, out.Shape) {
					err = fmt.Errorf("output shape %v != input shape %v", out.Shape, in.Shape)
				} else if p := out.Quant.Params(); p.Scale != SoftmaxScale || p.ZeroPoint != SoftmaxZeroPoint {
					err = fmt.Errorf("output parameters %v, want scale 1/256 and zero point -128", p)
				}
			}
		}
	}
	if err != nil {
		return err
	}
	defined[outIdx] = true
	return nil
}

// checkAct checks an int8 per-tensor activation tensor (of the given rank unless rank < 0).
func checkAct(t *Tensor, role string, rank int) error {
	if t.DType != Int8 || t.Quant == nil || t.Quant.Axis != -1 {
		return fmt.Errorf("%s %q must be int8 with per-tensor quantization parameters (is %v)", role, t.Name, t.DType)
	}
	if rank >= 0 && len(t.Shape) != rank {
		return fmt.Errorf("%s %q has shape %v, want rank %d", role, t.Name, t.Shape, rank)
	}
	return nil
}

func (m *Model) checkQuantize(in, out *Tensor) error {
	if err := checkAct(out, "output", -1); err != nil {
		return err
	}
	if !shapeEq(in.Shape, out.Shape) {
		return fmt.Errorf("output shape %v != input shape %v", out.Shape, in.Shape)
	}
	switch in.DType {
	case Float32:
		return nil
	case Uint8:
		if in.Quant.Axis != -1 {
			return fmt.Errorf("uint8 input %q must have per-tensor parameters", in.Name)
		}
		if _, err := RescaleMultiplier(in.Quant.Scales[0], out.Quant.Scales[0]); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("input %q is %v, want float32 or uint8", in.Name, in.DType)
}

// checkWeights checks the weights (and optional bias) of Conv2D/FullyConnected: int8 or int4 constant,
// symmetric (zero point 0), narrow range, per-tensor or per-channel along axis 0.
func checkWeights(w *Tensor, rank int) error {
	if w.DType != Int8 && w.DType != Int4 {
		return fmt.Errorf("weights %q are %v, want int8 or int4", w.Name, w.DType)
	}
	if len(w.Shape) != rank {
		return fmt.Errorf("weights %q have shape %v, want rank %d", w.Name, w.Shape, rank)
	}
	if w.Quant.Axis != -1 && w.Quant.Axis != 0 {
		return fmt.Errorf("weights %q quantized along axis %d, want per-tensor or axis 0 (output channel)", w.Name, w.Quant.Axis)
	}
	for c, z := range w.Quant.ZeroPoints {
		if z != 0 {
			return fmt.Errorf("weights %q: zero point[%d] = %d, want 0 (symmetric)", w.Name, c, z)
		}
	}
	bits := w.DType.Bits()
	lim := quant.NarrowSigned(bits)
	if w.DType == Int8 {
		for i, b := range w.Data {
			if int8(b) == -128 {
				return fmt.Errorf("weights %q: element %d is -128, outside the narrow range %v", w.Name, i, lim)
			}
		}
	} else {
		n := w.NumElements()
		for i := 0; i < n; i++ {
			v := int8(w.Data[i/2]>>(4*(i&1))<<4) >> 4
			if v == -8 {
				return fmt.Errorf("weights %q: element %d is -8, outside the narrow range %v", w.Name, i, lim)
			}
		}
	}
	return nil
}

// checkBias checks an int32 bias of n channels whose scale must be inScale*wScales[c] (zero point 0;
// relative tolerance 1e-3, as exporters compute the product in different precisions).
func checkBias(b *Tensor, n int, inScale float32, wScales []float32) error {
	if b.DType != Int32 {
		return fmt.Errorf("bias %q is %v, want int32", b.Name, b.DType)
	}
	if len(b.Shape) != 1 || b.Shape[0] != n {
		return fmt.Errorf("bias %q has shape %v, want [%d]", b.Name, b.Shape, n)
	}
	if b.Quant.Axis != -1 && b.Quant.Axis != 0 {
		return fmt.Errorf("bias %q quantized along axis %d", b.Name, b.Quant.Axis)
	}
	for c := 0; c < n; c++ {
		want := float64(inScale) * float64(wScales[min(c, len(wScales)-1)])
		got := float64(b.Quant.Scales[min(c, len(b.Quant.Scales)-1)])
		if math.Abs(got-want) > 1e-3*want {
			return fmt.Errorf("bias %q: scale[%d] = %g, want input scale * weight scale = %g", b.Name, c, got, want)
		}
	}
	return nil
}

func (m *Model) checkConv(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 3); err != nil {
		return err
	}
	if err := checkAct(out, "output", 3); err != nil {
		return err
	}
	w := &m.Tensors[op.Inputs[1]]
	if err := checkWeights(w, 4); err != nil {
		return err
	}
	h, wd, c := in.Shape[0], in.Shape[1], in.Shape[2]
	outC, kh, kw, wc := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	switch {
	case op.Groups == 1:
		if wc != c {
			return fmt.Errorf("weights %q have %d input channels, input %q has %d", w.Name, wc, in.Name, c)
		}
	case op.Groups == c && outC == c && wc == 1:
		// depthwise, channel multiplier 1
	default:
		return fmt.Errorf("groups=%d with %d input and %d output channels and weights %v: only groups=1 or depthwise (groups = input channels = output channels, weights [C,KH,KW,1]) are supported", op.Groups, c, outC, w.Shape)
	}
	if err := checkWindow(op, h, wd, kh, kw); err != nil {
		return err
	}
	if len(op.Inputs) == 3 {
		if len(w.Quant.Scales) != 1 && len(w.Quant.Scales) != outC {
			return fmt.Errorf("weights %q: %d scales for %d output channels", w.Name, len(w.Quant.Scales), outC)
		}
		if err := checkBias(&m.Tensors[op.Inputs[2]], outC, in.Quant.Scales[0], w.Quant.Scales); err != nil {
			return err
		}
	}
	want := []int{ConvOutSize(h, kh, op.StrideH, op.PadTop, op.PadBottom), ConvOutSize(wd, kw, op.StrideW, op.PadLeft, op.PadRight), outC}
	if !shapeEq(out.Shape, want) {
		return fmt.Errorf("output %q has shape %v, want %v", out.Name, out.Shape, want)
	}
	_, err := ConvMultipliers(in.Quant.Scales[0], w.Quant.Scales, out.Quant.Scales[0], outC)
	return err
}

// checkWindow checks strides, pads and kernel size against an h x w input.
func checkWindow(op *Op, h, w, kh, kw int) error {
	if op.StrideH < 1 || op.StrideW < 1 || op.StrideH > maxKernel || op.StrideW > maxKernel {
		return fmt.Errorf("strides %dx%d outside [1,%d]", op.StrideH, op.StrideW, maxKernel)
	}
	if kh < 1 || kw < 1 || kh > maxKernel || kw > maxKernel {
		return fmt.Errorf("kernel %dx%d outside [1,%d]", kh, kw, maxKernel)
	}
	for _, p := range [][2]int{{op.PadTop, kh}, {op.PadBottom, kh}, {op.PadLeft, kw}, {op.PadRight, kw}} {
		if p[0] < 0 || p[0] >= p[1] {
			return fmt.Errorf("padding %d outside [0,%d) for kernel %dx%d", p[0], p[1], kh, kw)
		}
	}
	if h+op.PadTop+op.PadBottom < kh || w+op.PadLeft+op.PadRight < kw {
		return fmt.Errorf("kernel %dx%d larger than the padded input %dx%d", kh, kw, h+op.PadTop+op.PadBottom, w+op.PadLeft+op.PadRight)
	}
	return nil
}

func (m *Model) checkFC(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 1); err != nil {
		return err
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	w := &m.Tensors[op.Inputs[1]]
	if err := checkWeights(w, 2); err != nil {
		return err
	}
	n, k := w.Shape[0], w.Shape[1]
	if k != in.Shape[0] {
		return fmt.Errorf("weights %q have shape %v, input %q has %d features", w.Name, w.Shape, in.Name, in.Shape[0])
	}
	if len(op.Inputs) == 3 {
		if err := checkBias(&m.Tensors[op.Inputs[2]], n, in.Quant.Scales[0], w.Quant.Scales); err != nil {
			return err
		}
	}
	if out.Shape[0] != n {
		return fmt.Errorf("output %q has shape %v, want [%d]", out.Name, out.Shape, n)
	}
	_, err := ConvMultipliers(in.Quant.Scales[0], w.Quant.Scales, out.Quant.Scales[0], n)
	return err
}

func checkPool(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 3); err != nil {
		return err
	}
	if err := checkAct(out, "output", 3); err != nil {
		return err
	}
	if in.Quant.Params() != out.Quant.Params() {
		return fmt.Errorf("output parameters %v differ from input parameters %v (pools keep them)", out.Quant.Params(), in.Quant.Params())
	}
	if err := checkWindow(op, in.Shape[0], in.Shape[1], op.KernelH, op.KernelW); err != nil {
		return err
	}
	want := []int{ConvOutSize(in.Shape[0], op.KernelH, op.StrideH, op.PadTop, op.PadBottom), ConvOutSize(in.Shape[1], op.KernelW, op.StrideW, op.PadLeft, op.PadRight), in.Shape[2]}
	if !shapeEq(out.Shape, want) {
		return fmt.Errorf("output %q has shape %v, want %v", out.Name, out.Shape, want)
	}
	return nil
}

func checkAdd(a, b, out *Tensor) error {
	if err := checkAct(a, "input", -1); err != nil {
		return err
	}
	if err := checkAct(b, "input", -1); err != nil {
		return err
	}
	if err := checkAct(out, "output", -1); err != nil {
		return err
	}
	if !shapeEq(a.Shape, b.Shape) || !shapeEq(a.Shape, out.Shape) {
		return fmt.Errorf("shapes %v + %v -> %v differ (no broadcasting)", a.Shape, b.Shape, out.Shape)
	}
	_, _, _, err := AddMultipliers(a.Quant.Scales[0], b.Quant.Scales[0], out.Quant.Scales[0])
	return err
}
