package qmodel

import (
	"fmt"
	"math"
)

// lmArity returns the allowed input counts of an LM op kind.
func lmArity(k OpKind) (minIn, maxIn, nAct int) {
	switch k {
	case OpEmbedding:
		return 2, 3, 1
	case OpRMSNorm:
		return 2, 2, 1
	case OpLinear, OpLMHead:
		return 2, 3, 1
	case OpRoPE, OpHadamard:
		return 1, 1, 1
	case OpAttention:
		return 5, 6, 3
	case OpSwiGLU:
		return 2, 2, 2
	}
	return 0, 0, 0
}

// validateLMOp checks a language-model op (wiring, attributes, shapes, parameters, derived
// multipliers, allocation bounds) and marks its output defined.
func (m *Model) validateLMOp(op *Op, defined []bool) error {
	minIn, maxIn, nAct := lmArity(op.Kind)
	if len(op.Inputs) < minIn || len(op.Inputs) > maxIn || len(op.Outputs) != 1 {
		return fmt.Errorf("%d inputs and %d outputs, want %d..%d inputs and 1 output", len(op.Inputs), len(op.Outputs), minIn, maxIn)
	}
	for _, t := range op.Inputs {
		if t < 0 || t >= len(m.Tensors) {
			return fmt.Errorf("input index %d out of range [0,%d)", t, len(m.Tensors))
		}
	}
	if t := op.Outputs[0]; t < 0 || t >= len(m.Tensors) {
		return fmt.Errorf("output index %d out of range [0,%d)", t, len(m.Tensors))
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
	if (op.StrideH|op.StrideW|op.PadTop|op.PadLeft|op.PadBottom|op.PadRight|op.KernelH|op.KernelW|op.Groups) != 0 || op.Act != ActNone {
		return fmt.Errorf("convolution attributes or a fused activation set on %v", op.Kind)
	}
	a := op.LM
	// Attributes that do not apply must be zero.
	var used LMAttrs
	switch op.Kind {
	case OpRMSNorm:
		used.Eps = a.Eps
	case OpRoPE:
		used.Heads, used.HeadDim, used.Theta, used.MaxSeq = a.Heads, a.HeadDim, a.Theta, a.MaxSeq
	case OpAttention:
		used.Heads, used.KVHeads, used.HeadDim, used.MaxSeq = a.Heads, a.KVHeads, a.HeadDim, a.MaxSeq
	case OpHadamard:
		used.Block = a.Block
	}
	if used.encode() != a.encode() { // compare float bits (NaN != NaN)
		return fmt.Errorf("attributes %+v: only %+v apply to %v", a, used, op.Kind)
	}
	in := &m.Tensors[op.Inputs[0]]
	var err error
	switch op.Kind {
	case OpEmbedding:
		err = m.checkEmbedding(op, in, out)
	case OpRMSNorm:
		err = m.checkRMSNorm(op, in, out)
	case OpLinear, OpLMHead:
		err = m.checkLinear(op, in, out)
	case OpRoPE:
		err = checkRoPE(op, in, out)
	case OpAttention:
		err = m.checkAttention(op, out)
	case OpSwiGLU:
		err = checkSwiGLU(in, &m.Tensors[op.Inputs[1]], out)
	case OpHadamard:
		err = checkHadamard(op, in, out)
	}
	if err != nil {
		return err
	}
	defined[outIdx] = true
	return nil
}

// checkUnitInt32 checks an int32 tensor of integer values carried with scale 1 and zero point 0
// (token ids, group scales).
func checkUnitInt32(t *Tensor, role string) error {
	if t.DType != Int32 || t.Quant == nil || t.Quant.Axis != -1 || t.Quant.Scales[0] != 1 || t.Quant.ZeroPoints[0] != 0 {
		return fmt.Errorf("%s %q must be int32 with per-tensor scale 1 and zero point 0", role, t.Name)
	}
	return nil
}

// checkInt32Act checks an int32 activation of rank 1 with per-tensor or per-element (axis 0)
// scales and zero points 0 (the logits of LMHead).
func checkInt32Act(t *Tensor) error {
	if t.DType != Int32 || t.Quant == nil || len(t.Shape) != 1 || (t.Quant.Axis != -1 && t.Quant.Axis != 0) {
		return fmt.Errorf("int32 input %q must have rank 1 and per-tensor or axis-0 quantization parameters", t.Name)
	}
	return nil
}

// checkGroupScales checks the integer group scales [rows, cols/G] of an int4 (or embedding) table
// and returns G.
func checkGroupScales(g *Tensor, rows, cols int) (int, error) {
	if err := checkUnitInt32(g, "group scales"); err != nil {
		return 0, err
	}
	if len(g.Shape) != 2 || g.Shape[0] != rows || cols%g.Shape[1] != 0 {
		return 0, fmt.Errorf("group scales %q have shape %v, want [%d, K/G] with G dividing K = %d", g.Name, g.Shape, rows, cols)
	}
	gs := cols / g.Shape[1]
	if gs%8 != 0 {
		return 0, fmt.Errorf("group scales %q: group size %d is not a multiple of 8", g.Name, gs)
	}
	v, err := g.Int32Values()
	if err != nil {
		return 0, err
	}
	groups := g.Shape[1]
	for r := 0; r < rows; r++ {
		var bound int64
		for j, s := range v[r*groups : (r+1)*groups] {
			if s < 0 || s > MaxGroupScale {
				return 0, fmt.Errorf("group scales %q: [%d][%d] = %d outside [0,%d]", g.Name, r, j, s, MaxGroupScale)
			}
			bound += int64(s) * int64(gs) * 7 * 255
		}
		if bound > math.MaxInt32 {
			return 0, fmt.Errorf("group scales %q: row %d: scales too large, the int32 accumulator could overflow", g.Name, r)
		}
	}
	return gs, nil
}

func (m *Model) checkEmbedding(op *Op, ids, out *Tensor) error {
	if err := checkUnitInt32(ids, "token ids"); err != nil {
		return err
	}
	if len(ids.Shape) != 1 || ids.Shape[0] != 1 {
		return fmt.Errorf("token ids %q have shape %v, want [1] (one token per row)", ids.Name, ids.Shape)
	}
	w := &m.Tensors[op.Inputs[1]]
	if err := checkWeights(w, 2); err != nil {
		return err
	}
	v, d := w.Shape[0], w.Shape[1]
	if len(op.Inputs) == 3 {
		if _, err := checkGroupScales(&m.Tensors[op.Inputs[2]], v, d); err != nil {
			return err
		}
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	if out.Shape[0] != d {
		return fmt.Errorf("output %q has shape %v, want [%d]", out.Name, out.Shape, d)
	}
	_, err := ConvMultipliers(1, w.Quant.Scales, out.Quant.Scales[0], v)
	return err
}

func (m *Model) checkRMSNorm(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 1); err != nil {
		return err
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	d := in.Shape[0]
	if out.Shape[0] != d {
		return fmt.Errorf("output %q has shape %v, want [%d]", out.Name, out.Shape, d)
	}
	if e := float64(op.LM.Eps); !(e > 0) || math.IsInf(e, 0) {
		return fmt.Errorf("epsilon %v, want finite and > 0", op.LM.Eps)
	}
	g := &m.Tensors[op.Inputs[1]]
	gv, err := g.Float32Values()
	if err != nil || len(g.Shape) != 1 || g.Shape[0] != d {
		return fmt.Errorf("gain %q must be a float32 constant of shape [%d]", g.Name, d)
	}
	for i, x := range gv {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("gain %q: element %d is %v", g.Name, i, x)
		}
		if _, err := RMSNormMultiplier(x, out.Quant.Scales[0], d); err != nil {
			return fmt.Errorf("gain %q: element %d: %w", g.Name, i, err)
		}
	}
	return nil
}

func (m *Model) checkLinear(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 1); err != nil {
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
	if k > maxLinearDepth {
		return fmt.Errorf("weights %q: depth %d > %d (the int32 accumulator could overflow)", w.Name, k, maxLinearDepth)
	}
	if len(w.Quant.Scales) != 1 && len(w.Quant.Scales) != n {
		return fmt.Errorf("weights %q: %d scales for %d rows", w.Name, len(w.Quant.Scales), n)
	}
	if len(op.Inputs) == 3 {
		if w.DType != Int4 {
			return fmt.Errorf("weights %q are %v: group scales apply to int4 weights only", w.Name, w.DType)
		}
		if _, err := checkGroupScales(&m.Tensors[op.Inputs[2]], n, k); err != nil {
			return err
		}
	}
	if op.Kind == OpLMHead {
		if err := checkInt32Act(out); err != nil {
			return err
		}
		if out.Shape[0] != n {
			return fmt.Errorf("output %q has shape %v, want [%d]", out.Name, out.Shape, n)
		}
		for c := 0; c < n; c++ {
			want := float64(in.Quant.Scales[0]) * float64(w.Quant.Scales[min(c, len(w.Quant.Scales)-1)])
			got := float64(out.Quant.Scales[min(c, len(out.Quant.Scales)-1)])
			if math.Abs(got-want) > 1e-3*want || out.Quant.ZeroPoints[min(c, len(out.Quant.ZeroPoints)-1)] != 0 {
				return fmt.Errorf("output %q: scale[%d] = %g zero point %d, want input scale * weight scale = %g and 0", out.Name, c, got, out.Quant.ZeroPoints[min(c, len(out.Quant.ZeroPoints)-1)], want)
			}
		}
		return nil
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	if out.Shape[0] != n {
		return fmt.Errorf("output %q has shape %v, want [%d]", out.Name, out.Shape, n)
	}
	_, err := ConvMultipliers(in.Quant.Scales[0], w.Quant.Scales, out.Quant.Scales[0], n)
	return err
}

func checkHeads(a LMAttrs, n int, rope bool) error {
	if a.Heads < 1 || a.HeadDim < 1 || a.Heads > n || a.HeadDim > n || a.Heads*a.HeadDim != n {
		return fmt.Errorf("%d heads of %d elements do not tile %d", a.Heads, a.HeadDim, n)
	}
	if a.HeadDim > 1<<16 {
		return fmt.Errorf("head dimension %d > %d (attention scores could overflow int32)", a.HeadDim, 1<<16)
	}
	if rope && a.HeadDim%2 != 0 {
		return fmt.Errorf("RoPE needs an even head dimension, got %d", a.HeadDim)
	}
	if a.MaxSeq < 1 || a.MaxSeq > MaxContext {
		return fmt.Errorf("context length %d outside [1,%d]", a.MaxSeq, MaxContext)
	}
	return nil
}

func checkRoPE(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 1); err != nil {
		return err
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	if !shapeEq(in.Shape, out.Shape) {
		return fmt.Errorf("output shape %v != input shape %v", out.Shape, in.Shape)
	}
	a := op.LM
	if err := checkHeads(a, in.Shape[0], true); err != nil {
		return err
	}
	if int64(a.MaxSeq)*int64(a.HeadDim/2) > MaxRoPETable {
		return fmt.Errorf("RoPE table of %d positions x %d pairs exceeds %d entries", a.MaxSeq, a.HeadDim/2, MaxRoPETable)
	}
	if t := float64(a.Theta); !(t > 0) || math.IsInf(t, 0) {
		return fmt.Errorf("theta %v, want finite and > 0", a.Theta)
	}
	_, err := RoPEMultiplier(in.Quant.Scales[0], out.Quant.Scales[0])
	return err
}

func (m *Model) checkAttention(op *Op, out *Tensor) error {
	q, k, v := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Inputs[2]]
	for _, t := range []*Tensor{q, k, v} {
		if err := checkAct(t, "input", 1); err != nil {
			return err
		}
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	a := op.LM
	if err := checkHeads(a, q.Shape[0], false); err != nil {
		return err
	}
	if a.KVHeads < 1 || a.KVHeads > a.Heads || a.Heads%a.KVHeads != 0 {
		return fmt.Errorf("%d key/value heads do not divide %d heads", a.KVHeads, a.Heads)
	}
	kv := a.KVHeads * a.HeadDim
	if k.Shape[0] != kv || v.Shape[0] != kv {
		return fmt.Errorf("k %v and v %v, want [%d] (%d heads of %d)", k.Shape, v.Shape, kv, a.KVHeads, a.HeadDim)
	}
	if !shapeEq(out.Shape, q.Shape) {
		return fmt.Errorf("output shape %v != query shape %v", out.Shape, q.Shape)
	}
	if 2*int64(a.MaxSeq)*int64(kv) > MaxKVCacheBytes {
		return fmt.Errorf("KV cache of %d positions x %d heads x %d needs more than %d bytes", a.MaxSeq, a.KVHeads, a.HeadDim, MaxKVCacheBytes)
	}
	var cs [2][]float32
	for j := range cs {
		c := &m.Tensors[op.Inputs[3+j]]
		vals, err := c.Float32Values()
		if err != nil || len(c.Shape) != 1 || c.Shape[0] != a.KVHeads {
			return fmt.Errorf("cache scales %q must be a float32 constant of shape [%d]", c.Name, a.KVHeads)
		}
		for h, s := range vals {
			if !(s > 0) || math.IsInf(float64(s), 0) {
				return fmt.Errorf("cache scales %q: head %d scale %v, want finite and > 0", c.Name, h, s)
			}
		}
		cs[j] = vals
	}
	if len(op.Inputs) > 5 {
		c := &m.Tensors[op.Inputs[5]]
		if err := checkUnitInt32(c, "cache range"); err != nil {
			return err
		}
		vals, err := c.Int32Values()
		if err != nil || len(c.Shape) != 1 || c.Shape[0] != 2 {
			return fmt.Errorf("cache range %q must be an int32 constant of shape [2] (K and V)", c.Name)
		}
		for j, v := range vals {
			if v < 1 || v > MaxCacheLevel {
				return fmt.Errorf("cache range %q: %s cache level bound %d outside [1, %d]", c.Name, [2]string{"K", "V"}[j], v, MaxCacheLevel)
			}
		}
	}
	for h := 0; h < a.KVHeads; h++ {
		if _, _, _, err := AttentionMultipliers(k.Quant.Scales[0], v.Quant.Scales[0], cs[0][h], cs[1][h], out.Quant.Scales[0]); err != nil {
			return fmt.Errorf("head %d: %w", h, err)
		}
		if c := AttentionExpScale(q.Quant.Scales[0], cs[0][h], a.HeadDim); math.IsInf(c, 0) || !(c > 0) {
			return fmt.Errorf("head %d: score scale %v not representable", h, c)
		}
	}
	return nil
}

// AttentionExpScale returns the factor that turns an integer score difference (max - score, in
// units of sQ*kCache) into log2 units: sQ*kCache/(sqrt(HeadDim)*ln 2).
func AttentionExpScale(sQ, kCache float32, headDim int) float64 {
	return float64(sQ) * float64(kCache) / (math.Sqrt(float64(headDim)) * math.Ln2)
}

func checkSwiGLU(g, u, out *Tensor) error {
	for _, t := range []*Tensor{g, u} {
		if err := checkAct(t, "input", 1); err != nil {
			return err
		}
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	if !shapeEq(g.Shape, u.Shape) || !shapeEq(g.Shape, out.Shape) {
		return fmt.Errorf("shapes gate %v, up %v, output %v differ", g.Shape, u.Shape, out.Shape)
	}
	_, err := SwiGLUMultiplier(g.Quant.Params(), u.Quant.Scales[0], out.Quant.Scales[0])
	return err
}

func checkHadamard(op *Op, in, out *Tensor) error {
	if err := checkAct(in, "input", 1); err != nil {
		return err
	}
	if err := checkAct(out, "output", 1); err != nil {
		return err
	}
	if !shapeEq(in.Shape, out.Shape) {
		return fmt.Errorf("output shape %v != input shape %v", out.Shape, in.Shape)
	}
	b := op.LM.Block
	if b < 2 || b > MaxHadamard || b&(b-1) != 0 || in.Shape[0]%b != 0 {
		return fmt.Errorf("block %d must be a power of two in [2,%d] dividing %d", b, MaxHadamard, in.Shape[0])
	}
	_, err := HadamardMultiplier(in.Quant.Scales[0], out.Quant.Scales[0], b)
	return err
}

// validateLM checks the model-level rules of a language model (one that has LM ops): one int32
// token-id input read by Embedding ops only, one output, and the KV-cache bound.
func (m *Model) validateLM() error {
	lm := false
	for i := range m.Ops {
		if m.Ops[i].Kind.IsLM() {
			lm = true
			break
		}
	}
	if !lm {
		for _, in := range m.Inputs {
			if m.Tensors[in].DType == Int32 {
				return fmt.Errorf("qmodel: int32 model input %q but no Embedding op (int32 inputs are token ids)", m.Tensors[in].Name)
			}
		}
		return nil
	}
	if len(m.Inputs) != 1 || m.Tensors[m.Inputs[0]].DType != Int32 {
		return fmt.Errorf("qmodel: a language model has one int32 token-id input")
	}
	if len(m.Outputs) != 1 {
		return fmt.Errorf("qmodel: a language model has one output (the logits), not %d", len(m.Outputs))
	}
	ids := m.Inputs[0]
	for i := range m.Ops {
		op := &m.Ops[i]
		for j, t := range op.Inputs {
			if t == ids && (op.Kind != OpEmbedding || j != 0) {
				return fmt.Errorf("qmodel: op %d (%s) reads the token ids; only Embedding may", i, op.Kind)
			}
		}
	}
	if kv := m.KVCacheBytes(); kv > MaxKVCacheBytes {
		return fmt.Errorf("qmodel: the KV cache needs %d bytes, more than %d", kv, MaxKVCacheBytes)
	}
	if n := m.RoPETableEntries(); n > MaxRoPETables {
		return fmt.Errorf("qmodel: the RoPE tables (distinct head dimension, context and theta) need %d entries, more than %d", n, MaxRoPETables)
	}
	return nil
}
