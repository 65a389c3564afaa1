package infer

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// LM is a loaded language model (a qmodel.Model with LM ops): validated, weights packed once,
// lookup tables and requantization parameters precomputed. It is immutable and safe for
// concurrent use; each generation stream uses its own LMSession.
type LM struct {
	qm     *qmodel.Model
	steps  []lmStep
	ids    int // token-id input tensor
	logits int // float32 output tensor
	vocab  int
	ctx    int
	// per tensor: elements per token and the buffer kind (0 none, 1 int8, 2 int32, 3 float32)
	width []int
	kind  []uint8
	// bytes of the resident weights (packed) and tables
	weightBytes int64
	scratchN    int                      // int32 scratch per row (Hadamard, attention scores)
	ropeTables  map[[3]uint32]ropeParams // shared RoPE tables by (HeadDim, MaxSeq, Theta bits), during LoadLM
	gemvScratch int                      // int32 scratch of the largest kernels.GEMV
	maxHD       int
}

const (
	bufNone = iota
	bufI8
	bufI32
	bufF32
)

// lmStep is one compiled LM op (or Add / Dequantize inside an LM).
type lmStep struct {
	kind         qmodel.OpKind
	name         string
	in, in2, in3 int
	out          int
	inN, outN    int
	zIn, zIn2    int32
	zOut         int32
	mult         quant.PreparedMultiplier
	lo, hi       int32
	perRow       []quant.PreparedMultiplier // Embedding: per vocabulary row; RMSNorm: per channel
	sign         []int8                     // RMSNorm: sign of the gain
	add          step                       // Add
	deq          []float32                  // Dequantize of int32: per-channel scales
	table        embTable                   // Embedding
	lin          lmLinear                   // Linear, LMHead
	rms          rmsNormParams              // RMSNorm
	rope         ropeParams                 // RoPE
	att          *attentionParams           // Attention
	silu         *[256]int32                // SwiGLU
	block        int                        // Hadamard
	deqFromInt8  bool
	deqS         float32
	addTab       *[2][256]int32 // Add: rescaled inputs ((q-z)<<AddLeftShift)*m of each int8 level
	fast         *lmFast        // the vector form of the op (lm_rowfast.go), nil: the plain op
}

// embTable is an int8 or int4 embedding table kept as stored in the file (int4 stays packed).
type embTable struct {
	v, d   int
	int4   bool
	data   []byte
	groups []int32 // [v][d/g] integer group scales, nil for none
	g      int
}

func (t *embTable) at(row, i int) int32 {
	var w int32
	if t.int4 {
		j := row*t.d + i
		w = int32(int8(t.data[j/2]>>(4*(j&1))<<4) >> 4)
	} else {
		w = int32(int8(t.data[row*t.d+i]))
	}
	if t.groups != nil {
		w *= t.groups[row*(t.d/t.g)+i/t.g]
	}
	return w
}

// lmLinear holds the packed weights of a Linear or LMHead op.
type lmLinear struct {
	n, k int
	w8   *kernels.PackedInt8
	w4   *kernels.PackedInt4
	bias []int32 // -zIn * row sums
	rq   kernels.Requant
	gemv *kernels.GEMV // the same layer prepared for one row (decode)
}

// LoadLM validates m (a language model) and prepares it for generation, with the default options
// (LoadLMWith). The returned LM does not reference m's tensor data except int4/int8 embedding
// tables, which it keeps as stored.
func LoadLM(m *qmodel.Model) (*LM, error) { return LoadLMWith(m, LoadOptions{}) }

// LoadLMWith validates m (a language model), checks its per-token work (a full context) against
// opt.MaxWork and prepares it for generation.
func LoadLMWith(m *qmodel.Model, opt LoadOptions) (*LM, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if !m.IsLM() {
		return nil, fmt.Errorf("infer: model %q is not a language model (no Embedding op): run it with Load", m.Name)
	}
	if err := m.CheckWork(opt.MaxWork); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	out := &m.Tensors[m.Outputs[0]]
	if out.DType != qmodel.Float32 || len(out.Shape) != 1 {
		return nil, fmt.Errorf("infer: language model output %q is %v %v, want float32 logits [V]", out.Name, out.DType, out.Shape)
	}
	lm := &LM{qm: m, ids: m.Inputs[0], logits: m.Outputs[0], vocab: out.Shape[0], ctx: m.ContextLength()}
	if lm.ctx == 0 {
		return nil, fmt.Errorf("infer: language model %q has no Attention or RoPE op: its context length is undefined", m.Name)
	}
	lm.width = make([]int, len(m.Tensors))
	lm.kind = make([]uint8, len(m.Tensors))
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.IsConst() || i == lm.ids {
			continue
		}
		lm.width[i] = t.NumElements()
		switch t.DType {
		case qmodel.Int8:
			lm.kind[i] = bufI8
		case qmodel.Int32:
			lm.kind[i] = bufI32
		case qmodel.Float32:
			lm.kind[i] = bufF32
		default:
			return nil, fmt.Errorf("infer: activation %q of type %v is not supported in a language model", t.Name, t.DType)
		}
	}
	lm.steps = make([]lmStep, len(m.Ops))
	for i := range m.Ops {
		if err := lm.compile(&lm.steps[i], &m.Ops[i]); err != nil {
			return nil, fmt.Errorf("infer: op %d (%s %s): %w", i, m.Ops[i].Kind, m.Ops[i].Name, err)
		}
	}
	lm.ropeTables = nil // the steps hold the tables
	lm.prepareFast()
	return lm, nil
}

// LoadLMFile reads, validates and loads a language-model file.
func LoadLMFile(path string) (*LM, error) {
	m, err := qmodel.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadLM(m)
}

// QModel returns the model description that was loaded. Callers must not modify it.
func (lm *LM) QModel() *qmodel.Model { return lm.qm }

// Vocab returns the number of logits (vocabulary size).
func (lm *LM) Vocab() int { return lm.vocab }

// ContextLength returns the number of positions a session holds.
func (lm *LM) ContextLength() int { return lm.ctx }

// WeightBytes returns the bytes of weights and tables resident after loading (int4 weights stay
// 4-bit: the packed kernel layout only).
func (lm *LM) WeightBytes() int64 { return lm.weightBytes }

// KVCacheBytes returns the bytes of int8 KV cache one session allocates.
func (lm *LM) KVCacheBytes() int64 { return lm.qm.KVCacheBytes() }

func prepared(m quant.Multiplier) quant.PreparedMultiplier { return m.Prepare() }

func (lm *LM) compile(s *lmStep, op *qmodel.Op) error {
	m := lm.qm
	s.kind, s.name = op.Kind, op.Name
	s.in, s.in2, s.in3 = op.Inputs[0], -1, -1
	s.out = op.Outputs[0]
	in, out := &m.Tensors[s.in], &m.Tensors[s.out]
	s.inN, s.outN = in.NumElements(), out.NumElements()
	if in.Quant != nil {
		s.zIn = in.Quant.ZeroPoints[0]
	}
	if out.Quant != nil {
		s.zOut = out.Quant.ZeroPoints[0]
	}
	s.lo, s.hi = -128, 127
	switch op.Kind {
	case qmodel.OpEmbedding:
		return lm.compileEmbedding(s, op)
	case qmodel.OpRMSNorm:
		return lm.compileRMSNorm(s, op)
	case qmodel.OpLinear, qmodel.OpLMHead:
		return lm.compileLinear(s, op)
	case qmodel.OpRoPE:
		mu, err := qmodel.RoPEMultiplier(in.Quant.Scales[0], out.Quant.Scales[0])
		if err != nil {
			return err
		}
		s.mult = prepared(mu)
		// Ops with equal head dimension, context and theta share one table (qmodel bounds the
		// distinct tables together: MaxRoPETables).
		key := [3]uint32{uint32(op.LM.HeadDim), uint32(op.LM.MaxSeq), math.Float32bits(op.LM.Theta)}
		t, ok := lm.ropeTables[key]
		if !ok {
			t = newRoPE(op.LM.Heads, op.LM.HeadDim, op.LM.MaxSeq, float64(op.LM.Theta))
			if lm.ropeTables == nil {
				lm.ropeTables = map[[3]uint32]ropeParams{}
			}
			lm.ropeTables[key] = t
			lm.weightBytes += int64(8 * len(t.cos))
		}
		t.heads = op.LM.Heads
		s.rope = t
	case qmodel.OpAttention:
		return lm.compileAttention(s, op)
	case qmodel.OpSwiGLU:
		s.in2 = op.Inputs[1]
		up := &m.Tensors[s.in2]
		s.zIn2 = up.Quant.ZeroPoints[0]
		tab, _ := qmodel.SiLUTable(in.Quant.Params())
		mu, err := qmodel.SwiGLUMultiplier(in.Quant.Params(), up.Quant.Scales[0], out.Quant.Scales[0])
		if err != nil {
			return err
		}
		s.silu, s.mult = &tab, prepared(mu)
	case qmodel.OpHadamard:
		s.block = op.LM.Block
		mu, err := qmodel.HadamardMultiplier(in.Quant.Scales[0], out.Quant.Scales[0], s.block)
		if err != nil {
			return err
		}
		s.mult = prepared(mu)
		lm.scratchN = max(lm.scratchN, s.inN)
	case qmodel.OpAdd:
		s.in2 = op.Inputs[1]
		pa, pb, po := in.Quant.Params(), m.Tensors[s.in2].Quant.Params(), out.Quant.Params()
		a := &s.add
		var err error
		if a.mA, a.mB, a.mOut, err = qmodel.AddMultipliers(pa.Scale, pb.Scale, po.Scale); err != nil {
			return err
		}
		a.zA, a.zB, a.zOut = pa.ZeroPoint, pb.ZeroPoint, po.ZeroPoint
		a.lo, a.hi = qmodel.ActivationRange(op.Act, po)
		s.addTab = new([2][256]int32)
		ma, mb := a.mA.Prepare(), a.mB.Prepare()
		for q := -128; q < 128; q++ {
			s.addTab[0][q+128] = ma.Apply((int32(q) - a.zA) << qmodel.AddLeftShift)
			s.addTab[1][q+128] = mb.Apply((int32(q) - a.zB) << qmodel.AddLeftShift)
		}
		s.mult = prepared(a.mOut)
		lm.weightBytes += 2 * 256 * 4
	case qmodel.OpDequantize:
		if in.DType == qmodel.Int32 {
			s.deq = make([]float32, s.inN)
			for c := range s.deq {
				s.deq[c] = in.Quant.Scales[min(c, len(in.Quant.Scales)-1)]
			}
		} else {
			s.deqFromInt8, s.deqS = true, in.Quant.Scales[0]
		}
	default:
		return fmt.Errorf("op kind %v is not supported in a language model", op.Kind)
	}
	return nil
}

func (lm *LM) compileEmbedding(s *lmStep, op *qmodel.Op) error {
	m := lm.qm
	w, out := &m.Tensors[op.Inputs[1]], &m.Tensors[s.out]
	t := embTable{v: w.Shape[0], d: w.Shape[1], int4: w.DType == qmodel.Int4, data: w.Data}
	if len(op.Inputs) == 3 {
		g := &m.Tensors[op.Inputs[2]]
		gs, err := g.Int32Values()
		if err != nil {
			return err
		}
		t.groups, t.g = gs, t.d/g.Shape[1]
		lm.weightBytes += int64(4 * len(gs))
	}
	mults, err := qmodel.ConvMultipliers(1, w.Quant.Scales, out.Quant.Scales[0], t.v)
	if err != nil {
		return err
	}
	s.perRow = make([]quant.PreparedMultiplier, t.v)
	for r, mu := range mults {
		s.perRow[r] = prepared(mu)
	}
	s.table = t
	lm.weightBytes += int64(len(w.Data)) + int64(16*t.v)
	return nil
}

// rmsNormParams are the integer constants of RMSNorm (see rmsNormRow).
type rmsNormParams struct {
	shift int    // S: the normalised value is held in units of 2^-S
	epsQ  uint64 // eps/sIn^2 in units of 2^-32
}

func (lm *LM) compileRMSNorm(s *lmStep, op *qmodel.Op) error {
	m := lm.qm
	in, out := &m.Tensors[s.in], &m.Tensors[s.out]
	gain, err := m.Tensors[op.Inputs[1]].Float32Values()
	if err != nil {
		return err
	}
	d := s.inN
	s.rms.shift = qmodel.RMSNormShift(d)
	e := float64(op.LM.Eps) / (float64(in.Quant.Scales[0]) * float64(in.Quant.Scales[0])) * (1 << 32)
	s.rms.epsQ = uint64(math.Min(math.Round(e), 1<<62))
	s.perRow = make([]quant.PreparedMultiplier, d)
	s.sign = make([]int8, d)
	for i, g := range gain {
		mu, err := qmodel.RMSNormMultiplier(g, out.Quant.Scales[0], d)
		if err != nil {
			return err
		}
		s.perRow[i] = prepared(mu)
		s.sign[i] = 1
		if g < 0 {
			s.sign[i] = -1
		}
	}
	lm.weightBytes += int64(17 * d)
	return nil
}

func (lm *LM) compileLinear(s *lmStep, op *qmodel.Op) error {
	m := lm.qm
	in, wt, out := &m.Tensors[s.in], &m.Tensors[op.Inputs[1]], &m.Tensors[s.out]
	wv, err := wt.Int8Values() // temporary: packed below, not kept
	if err != nil {
		return err
	}
	n, k := wt.Shape[0], wt.Shape[1]
	l := &s.lin
	l.n, l.k = n, k
	var sums []int32
	switch {
	case wt.DType == qmodel.Int4 && len(op.Inputs) == 3:
		g := &m.Tensors[op.Inputs[2]]
		gs, err := g.Int32Values()
		if err != nil {
			return err
		}
		if l.w4, err = kernels.PackInt4(wv, n, k, k/g.Shape[1], gs); err != nil {
			return err
		}
		sums = l.w4.RowSums()
		lm.weightBytes += l.w4.ResidentBytes()
	case wt.DType == qmodel.Int4 && k%8 == 0:
		ones := make([]int32, n)
		for i := range ones {
			ones[i] = 1
		}
		if l.w4, err = kernels.PackInt4(wv, n, k, k, ones); err != nil {
			return err
		}
		sums = l.w4.RowSums()
		lm.weightBytes += l.w4.ResidentBytes()
	default: // int8, or int4 with K not a multiple of 8 (unpacked to int8)
		if l.w8, err = kernels.PackInt8(wv, n, k); err != nil {
			return err
		}
		sums = l.w8.RowSums()
		lm.weightBytes += l.w8.ResidentBytes()
	}
	l.bias = make([]int32, n)
	for c := range l.bias {
		l.bias[c] = -s.zIn * sums[c] // |zIn*sum| <= 128*K*127*MaxGroupScale bound checked by qmodel
	}
	if op.Kind == qmodel.OpLMHead {
		return lm.prepareGEMV(l, nil)
	}
	mults, err := qmodel.ConvMultipliers(in.Quant.Scales[0], wt.Quant.Scales, out.Quant.Scales[0], n)
	if err != nil {
		return err
	}
	l.rq.M0, l.rq.Shift = make([]int32, n), make([]int32, n)
	for c, mu := range mults {
		l.rq.M0[c], l.rq.Shift[c] = mu.M0, mu.Shift
	}
	l.rq.ZeroPoint, l.rq.Min, l.rq.Max = s.zOut, -128, 127
	return lm.prepareGEMV(l, &l.rq)
}

// prepareGEMV builds the decode form of a linear layer (kernels.GEMV: epilogue checked once, no
// per-call locks) and records its scratch need.
func (lm *LM) prepareGEMV(l *lmLinear, rq *kernels.Requant) error {
	var err error
	if l.w4 != nil {
		l.gemv, err = kernels.NewGEMVInt4(l.w4, l.bias, rq)
	} else {
		l.gemv, err = kernels.NewGEMVInt8(l.w8, l.bias, rq)
	}
	if err != nil {
		return err
	}
	lm.gemvScratch = max(lm.gemvScratch, l.gemv.ScratchLen())
	return nil
}

// attentionParams are the constants of one Attention op.
type attentionParams struct {
	heads, kvHeads, hd, maxSeq int
	zQ, zK, zV                 int32
	mk, mv, mo                 []quant.PreparedMultiplier // per KV head
	kTab, vTab                 [][256]int8                // per KV head: cache level of each int8 input
	expC                       []expScale                 // per KV head
	cacheIndex                 int                        // which KV cache of the session
}

func (lm *LM) compileAttention(s *lmStep, op *qmodel.Op) error {
	m := lm.qm
	q, k, v, out := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Inputs[2]], &m.Tensors[s.out]
	ks, err := m.Tensors[op.Inputs[3]].Float32Values()
	if err != nil {
		return err
	}
	vs, err := m.Tensors[op.Inputs[4]].Float32Values()
	if err != nil {
		return err
	}
	a := &attentionParams{heads: op.LM.Heads, kvHeads: op.LM.KVHeads, hd: op.LM.HeadDim, maxSeq: op.LM.MaxSeq,
		zQ: q.Quant.ZeroPoints[0], zK: k.Quant.ZeroPoints[0], zV: v.Quant.ZeroPoints[0]}
	s.in2, s.in3 = op.Inputs[1], op.Inputs[2]
	kMax, vMax, err := m.AttentionCacheMax(op)
	if err != nil {
		return err
	}
	for h := 0; h < a.kvHeads; h++ {
		mk, mv, mo, err := qmodel.AttentionMultipliers(k.Quant.Scales[0], v.Quant.Scales[0], ks[h], vs[h], out.Quant.Scales[0])
		if err != nil {
			return err
		}
		a.mk, a.mv, a.mo = append(a.mk, prepared(mk)), append(a.mv, prepared(mv)), append(a.mo, prepared(mo))
		var kt, vt [256]int8
		for q := -128; q < 128; q++ {
			kt[q+128] = int8(quant.Clamp(a.mk[h].Apply(int32(q)-a.zK), -kMax, kMax))
			vt[q+128] = int8(quant.Clamp(a.mv[h].Apply(int32(q)-a.zV), -vMax, vMax))
		}
		a.kTab, a.vTab = append(a.kTab, kt), append(a.vTab, vt)
		lm.weightBytes += 512
		a.expC = append(a.expC, newExpScale(qmodel.AttentionExpScale(q.Quant.Scales[0], ks[h], a.hd)))
	}
	for i := range lm.steps {
		if lm.steps[i].att != nil {
			a.cacheIndex++
		}
	}
	s.att = a
	lm.scratchN = max(lm.scratchN, 2*a.maxSeq+a.hd)
	lm.maxHD = max(lm.maxHD, a.hd)
	return nil
}
