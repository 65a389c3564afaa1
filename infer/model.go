package infer

import (
	"fmt"
	"math"
	"sync"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// step is one compiled op.
type step struct {
	kind qmodel.OpKind
	name string
	in   int // tensor ids
	in2  int
	out  int
	inN  int // elements per sample of in / out
	outN int

	// Conv2D / FullyConnected
	w         *kernels.PackedInt8
	w4        *kernels.PackedInt4 // FullyConnected with int4 weights (then w is nil)
	dw        []int8              // depthwise weights in kernel layout [(kh*KW+kw)*C + c]
	depthwise bool
	bias      []int32 // bias - zIn*rowsums
	rq        kernels.Requant
	cs        kernels.ConvShape
	inZero    int8
	// fc, if not nil, runs this Conv2D as one fused pass (kernels.FusedConv) when the kernels
	// path has a fused kernel; with pool set it also computes the following MaxPool2D (writing
	// that op's output tensor poolOut) and the pool step is skipped.
	fc      *kernels.FusedConv
	pool    *step
	poolOut int
	// shiftedIn: this fused conv reads RunUint8's bytes directly (its input is the model's
	// uint8 input through a Quantize whose table is u -> u-128, which skipQuant marks).
	shiftedIn bool
	skipQuant bool

	// pools
	h, wd, c, oh, ow, kh, kw, sh, sw, pt, pl int
	lo, hi                                   int32

	// Add
	zA, zB, zOut int32
	mA, mB, mOut quant.Multiplier
	addTab       *[1 << 16]int8 // the output for every input pair, index uint8(a)<<8 | uint8(b)
	addLUT       *[2][256]int32 // rescaled inputs of each level, for the vector Add (cnnadd.go); nil: addTab only

	// qmodel.RequantOnnxruntime (onnxruntime.go): Conv2D/FullyConnected run ortLinear with these
	// multipliers on the weights as stored; a float Quantize rounds half to even.
	ortM     []quant.Float32Multiplier
	ortW     []int8  // [O][KH][KW][I/groups] or [N][K]
	ortBias  []int32 // the stored bias (input zero point not folded)
	groups   int
	ortRound bool
	// Quantize (float): scale, zero; (uint8): table
	scale float32
	zero  int32
	table *[256]int8
	// Softmax
	exp  *[256]int64
	rowN int
}

// Model is a loaded model: validated, weights packed, biases and requantization parameters
// precomputed. It is immutable and safe for concurrent use.
type Model struct {
	qm       *qmodel.Model
	steps    []step
	input    int
	output   int
	inType   qmodel.DType
	outType  qmodel.DType
	inN      int
	outN     int
	scratchN int
	// ortRequant: the model's Meta selects qmodel.RequantOnnxruntime (onnxruntime.go).
	ortRequant bool
	// Integer entry and exit: the steps [first, last) that run on int8 data, with the tensors
	// at their ends (the Quantize output and the Dequantize input, or the model input/output).
	first, last int
	int8In      int
	int8Out     int
	pool        sync.Pool
	maxPoolC    int                // largest channel count of an AvgPool2D (session accumulator size)
	plan        plan               // shared activation-buffer plan
	fusedProbe  *kernels.FusedConv // any of the fused convolutions (nil if none), for Fused()
}

// LoadOptions configure LoadWith.
type LoadOptions struct {
	// MaxWork is the per-sample work budget (qmodel.Model.Work: multiply-accumulates, window reads
	// and elements): a model that needs more is refused, since a small, valid file can describe
	// hours of computation per sample. 0 means qmodel.DefaultMaxWork, a negative value no limit.
	MaxWork int64
}

// Load validates m and prepares it for execution, with the default options (LoadWith). The
// returned Model does not reference m's tensor data (weights are copied into packed form), so m
// may be discarded or changed afterwards.
func Load(m *qmodel.Model) (*Model, error) { return LoadWith(m, LoadOptions{}) }

// LoadWith validates m, checks its per-sample work against opt.MaxWork and prepares it for
// execution.
func LoadWith(m *qmodel.Model, opt LoadOptions) (*Model, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if m.IsLM() {
		return nil, fmt.Errorf("infer: model %q is a language model: load it with LoadLM (qatgo generate, eval or bench), not Load", m.Name)
	}
	if err := m.CheckWork(opt.MaxWork); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if len(m.Inputs) != 1 || len(m.Outputs) != 1 {
		return nil, fmt.Errorf("infer: model has %d inputs and %d outputs; this runtime runs models with one of each", len(m.Inputs), len(m.Outputs))
	}
	md := &Model{qm: m, input: m.Inputs[0], output: m.Outputs[0]}
	rule, err := m.Requant()
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	md.ortRequant = rule == qmodel.RequantOnnxruntime
	if md.input == md.output {
		return nil, fmt.Errorf("infer: the model output %q is its input", m.Tensors[md.input].Name)
	}
	in, out := &m.Tensors[md.input], &m.Tensors[md.output]
	md.inType, md.outType = in.DType, out.DType
	md.inN, md.outN = in.NumElements(), out.NumElements()
	if md.outType != qmodel.Float32 && md.outType != qmodel.Int8 {
		return nil, fmt.Errorf("infer: model output %q is %v, want float32 or int8", out.Name, md.outType)
	}
	md.steps = make([]step, len(m.Ops))
	for i := range m.Ops {
		if err := md.compile(&md.steps[i], &m.Ops[i]); err != nil {
			return nil, fmt.Errorf("infer: op %d (%s %q): %w", i, m.Ops[i].Kind, m.Ops[i].Name, err)
		}
	}
	md.first, md.last = 0, len(md.steps)
	md.int8In, md.int8Out = md.input, md.output
	if md.inType != qmodel.Int8 {
		if md.steps[0].kind == qmodel.OpQuantize && md.steps[0].in == md.input {
			md.first, md.int8In = 1, md.steps[0].out
		} else {
			md.int8In = -1
		}
	}
	if md.outType != qmodel.Int8 {
		l := len(md.steps) - 1
		if md.steps[l].kind == qmodel.OpDequantize && md.steps[l].out == md.output && l >= md.first {
			md.last, md.int8Out = l, md.steps[l].in
		} else {
			md.int8Out = -1
		}
	}
	md.fuse()
	md.plan = md.makePlan(false)
	return md, nil
}

// fuse prepares kernels.FusedConv for each Conv2D: with the following MaxPool2D when that pool
// is 2x2 with stride 2, no padding and no clamp beyond the conv's, and is the only reader of the
// conv output (which must not be a model output); alone otherwise, for convolutions of up to 64
// output channels (larger ones run faster on the GEMM path). Convolutions of more than
// maxFusedMACs per image are not fused.
func (md *Model) fuse() {
	if disableFusion || md.ortRequant {
		return
	}
	readers := make([]int, len(md.qm.Tensors))
	for i := range md.steps {
		st := &md.steps[i]
		readers[st.in]++
		if st.in2 >= 0 {
			readers[st.in2]++
		}
	}
	for i := range md.steps {
		st := &md.steps[i]
		if st.kind != qmodel.OpConv2D || st.depthwise || st.w == nil {
			continue
		}
		var next *step
		if i+1 < len(md.steps) {
			next = &md.steps[i+1]
		}
		pool := next != nil && next.kind == qmodel.OpMaxPool2D && next.in == st.out && next.in2 < 0 &&
			readers[st.out] == 1 && st.out != md.output && st.out != md.int8Out &&
			next.kh == 2 && next.kw == 2 && next.sh == 2 && next.sw == 2 && next.pt == 0 && next.pl == 0 &&
			next.oh == st.cs.OutH()/2 && next.ow == st.cs.OutW()/2 && next.c == st.cs.OutC &&
			next.lo <= st.rq.Min && next.hi >= st.rq.Max
		if !pool && st.cs.OutC > 64 {
			continue
		}
		// FusedConv runs one image on one goroutine; the GEMM path splits large images over
		// the kernel threads, so those keep it.
		if st.cs.OutH()*st.cs.OutW()*st.cs.OutC*st.cs.K() > maxFusedMACs {
			continue
		}
		fc, err := kernels.NewFusedConv(st.cs, pool, st.inZero, st.w, st.bias, &st.rq)
		if err != nil {
			continue // not expected for a validated model; the op-by-op path stays correct
		}
		st.fc = fc
		md.fusedProbe = fc
		if pool {
			st.pool, st.poolOut = next, next.out
		}
		// A uint8 image quantized with zero point -128 and its own scale is the byte minus
		// 128: the fused conv reads the bytes and the Quantize step is skipped.
		if i == 1 && md.steps[0].kind == qmodel.OpQuantize && md.steps[0].table != nil && md.steps[0].in == md.input &&
			md.steps[0].out == st.in && readers[st.in] == 1 && isShiftTable(md.steps[0].table) {
			st.shiftedIn, md.steps[0].skipQuant = true, true
		}
	}
}

// isShiftTable reports whether t maps every byte u to u-128.
func isShiftTable(t *[256]int8) bool {
	for u, v := range t {
		if v != int8(u-128) {
			return false
		}
	}
	return true
}

// LoadFile reads, validates and loads a model file with the default options.
func LoadFile(path string) (*Model, error) { return LoadFileWith(path, LoadOptions{}) }

// LoadFileWith reads, validates and loads a model file.
func LoadFileWith(path string, opt LoadOptions) (*Model, error) {
	m, err := qmodel.ReadFile(path)
	if err != nil {
		return nil, err
	}
	md, err := LoadWith(m, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return md, nil
}

// QModel returns the model description that was loaded. Callers must not modify it.
func (md *Model) QModel() *qmodel.Model { return md.qm }

// InputShape returns the per-sample input shape.
func (md *Model) InputShape() []int { return append([]int(nil), md.qm.Tensors[md.input].Shape...) }

// OutputShape returns the per-sample output shape.
func (md *Model) OutputShape() []int { return append([]int(nil), md.qm.Tensors[md.output].Shape...) }

// InputType returns the model input's element type (float32, uint8 or int8).
func (md *Model) InputType() qmodel.DType { return md.inType }

// InputSize returns the number of elements of one sample's input.
func (md *Model) InputSize() int { return md.inN }

// OutputSize returns the number of elements of one sample's output.
func (md *Model) OutputSize() int { return md.outN }

// Labels returns the output class names recorded in the model (may be empty).
func (md *Model) Labels() []string { return md.qm.Labels }

// NumOps returns the number of ops.
func (md *Model) NumOps() int { return len(md.steps) }

func params(t *qmodel.Tensor) quant.Params { return t.Quant.Params() }

func (md *Model) compile(s *step, op *qmodel.Op) error {
	m := md.qm
	s.kind, s.name = op.Kind, op.Name
	if s.name == "" {
		s.name = op.Kind.String()
	}
	s.in, s.in2, s.out = op.Inputs[0], -1, op.Outputs[0]
	in, out := &m.Tensors[s.in], &m.Tensors[s.out]
	s.inN, s.outN = in.NumElements(), out.NumElements()
	switch op.Kind {
	case qmodel.OpQuantize:
		po := params(out)
		s.scale, s.zero = po.Scale, po.ZeroPoint
		s.ortRound = md.ortRequant
		if in.DType == qmodel.Uint8 && md.ortRequant {
			return errNoOnnxruntimeRule
		}
		if in.DType == qmodel.Uint8 {
			pi := params(in)
			mult, err := qmodel.RescaleMultiplier(pi.Scale, po.Scale)
			if err != nil {
				return err
			}
			s.table = new([256]int8)
			for u := 0; u < 256; u++ {
				s.table[u] = int8(quant.Requantize(int32(u)-pi.ZeroPoint, mult, po.ZeroPoint, -128, 127))
			}
		}
	case qmodel.OpDequantize:
		p := params(in)
		s.scale, s.zero = p.Scale, p.ZeroPoint
	case qmodel.OpConv2D, qmodel.OpFullyConnected:
		return md.compileLinear(s, op)
	case qmodel.OpMaxPool2D, qmodel.OpAvgPool2D:
		s.h, s.wd, s.c = in.Shape[0], in.Shape[1], in.Shape[2]
		s.oh, s.ow = out.Shape[0], out.Shape[1]
		s.kh, s.kw, s.sh, s.sw, s.pt, s.pl = op.KernelH, op.KernelW, op.StrideH, op.StrideW, op.PadTop, op.PadLeft
		s.lo, s.hi = qmodel.ActivationRange(op.Act, params(out))
		md.maxPoolC = max(md.maxPoolC, s.c)
		if op.Kind == qmodel.OpAvgPool2D && md.ortRequant {
			return errNoOnnxruntimeRule
		}
	case qmodel.OpAdd:
		s.in2 = op.Inputs[1]
		pa, pb, po := params(in), params(&m.Tensors[s.in2]), params(out)
		var err error
		if s.mA, s.mB, s.mOut, err = qmodel.AddMultipliers(pa.Scale, pb.Scale, po.Scale); err != nil {
			return err
		}
		s.zA, s.zB, s.zOut = pa.ZeroPoint, pb.ZeroPoint, po.ZeroPoint
		s.lo, s.hi = qmodel.ActivationRange(op.Act, po)
		s.addTab = addTable(s)
		s.addLUT = addInputTables(s)
		if md.ortRequant {
			s.addLUT = nil
			if s.addTab, err = quant.OnnxruntimeAddTable(pa.Scale, pb.Scale, po.Scale, pa.ZeroPoint, pb.ZeroPoint, po.ZeroPoint, s.lo, s.hi); err != nil {
				return err
			}
		}
	case qmodel.OpReshape:
	case qmodel.OpSoftmax:
		if md.ortRequant {
			return errNoOnnxruntimeRule
		}
		p := params(in)
		s.rowN = in.Shape[len(in.Shape)-1]
		s.exp = new([256]int64)
		for d := 0; d < 256; d++ {
			// exp(-d*scale) in Q20 fixed point; entry 0 (the row maximum) is exactly 2^20.
			s.exp[d] = int64(math.Round(math.Exp(-float64(d)*float64(p.Scale)) * (1 << softmaxFracBits)))
		}
	default:
		return fmt.Errorf("unsupported op kind %v", op.Kind)
	}
	return nil
}

// softmaxFracBits is the fixed-point precision of Softmax's exponential table.
const softmaxFracBits = 20

// compileLinear packs the weights of a Conv2D or FullyConnected op, folds the input zero point into
// the bias and derives the requantization parameters.
func (md *Model) compileLinear(s *step, op *qmodel.Op) error {
	m := md.qm
	in, wt, out := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	pi, po := params(in), params(out)
	wv, err := wt.Int8Values()
	if err != nil {
		return err
	}
	n := wt.Shape[0]
	k := len(wv) / n
	var bias []int32
	if len(op.Inputs) == 3 {
		if bias, err = m.Tensors[op.Inputs[2]].Int32Values(); err != nil {
			return err
		}
	} else {
		bias = make([]int32, n)
	}
	mults, err := qmodel.ConvMultipliers(pi.Scale, wt.Quant.Scales, po.Scale, n)
	if err != nil {
		return err
	}
	s.rq.M0, s.rq.Shift = make([]int32, n), make([]int32, n)
	for c, mu := range mults {
		s.rq.M0[c], s.rq.Shift[c] = mu.M0, mu.Shift
	}
	s.rq.ZeroPoint = po.ZeroPoint
	s.rq.Min, s.rq.Max = qmodel.ActivationRange(op.Act, po)
	s.inZero = int8(pi.ZeroPoint)

	// Row sums of the weights (per output channel) for folding the input zero point.
	sums := make([]int64, n)
	for c := 0; c < n; c++ {
		var t int64
		for _, v := range wv[c*k : (c+1)*k] {
			t += int64(v)
		}
		sums[c] = t
	}
	s.bias = make([]int32, n)
	for c := 0; c < n; c++ {
		b := int64(bias[c]) - int64(pi.ZeroPoint)*sums[c]
		// |sum x*w| <= K*128*127; bias' plus that must stay inside int32.
		if lim := int64(math.MaxInt32) - int64(k)*128*127; b > lim || b < -lim {
			return fmt.Errorf("bias of channel %d (%d after folding the input zero point) can overflow the int32 accumulator", c, b)
		}
		s.bias[c] = int32(b)
	}

	if md.ortRequant {
		return md.compileOnnxruntime(s, op, wv, bias)
	}
	if op.Kind == qmodel.OpFullyConnected {
		if wt.DType == qmodel.Int4 && !disableInt4 {
			if s.w4 = packInt4FC(wv, n, k); s.w4 != nil {
				return nil
			}
		}
		if s.w, err = kernels.PackInt8(wv, n, k); err != nil {
			return err
		}
		return nil
	}
	s.cs = kernels.ConvShape{InH: in.Shape[0], InW: in.Shape[1], InC: in.Shape[2], OutC: n,
		KH: wt.Shape[1], KW: wt.Shape[2], StrideH: op.StrideH, StrideW: op.StrideW,
		PadTop: op.PadTop, PadLeft: op.PadLeft, PadBottom: op.PadBottom, PadRight: op.PadRight}
	if err := s.cs.Validate(); err != nil {
		return err
	}
	if op.Groups > 1 {
		s.depthwise = true
		// [C][KH][KW][1] -> [(kh*KW+kw)*C + c]
		c, khw := n, wt.Shape[1]*wt.Shape[2]
		s.dw = make([]int8, len(wv))
		for ch := 0; ch < c; ch++ {
			for j := 0; j < khw; j++ {
				s.dw[j*c+ch] = wv[ch*khw+j]
			}
		}
		return nil
	}
	if s.w, err = kernels.PackInt8(wv, n, k); err != nil {
		return err
	}
	l := kernels.Conv2DScratchLen(s.cs)
	if l > MaxScratchBytes {
		// A small file can describe a convolution whose patch matrix is terabytes (a huge kernel
		// sliding over a large input): refuse it here rather than fail in NewSession.
		return fmt.Errorf("convolution %dx%dx%d -> %dx%dx%d with a %dx%d kernel needs a %d-byte patch buffer, more than the runtime's limit of %d",
			s.cs.InH, s.cs.InW, s.cs.InC, s.cs.OutH(), s.cs.OutW(), n, s.cs.KH, s.cs.KW, l, MaxScratchBytes)
	}
	md.scratchN = max(md.scratchN, l)
	return nil
}

// maxFusedMACs bounds the multiply-adds per image of a fused convolution (the kernels' threshold
// for splitting a problem over threads).
const maxFusedMACs = 1 << 22

// disableFusion makes Load keep every op on its own (the benchmarks' before/after comparison).
// Only tests set it, never concurrently with Load.
var disableFusion bool

// disableInt4 makes Load unpack int4 FullyConnected weights to int8 (the reference path of the
// tests). Only tests set it, never concurrently with Load.
var disableInt4 bool

// packInt4FC packs the int4 weights of a FullyConnected op for kernels.GEMMInt4 with one group
// spanning K and group scale 1, so that the kernel's accumulator is exactly bias + sum a*w, the
// same int32 as the int8 path. It returns nil when kernels.PackInt4 does not accept the weights
// (K not a multiple of 8, a weight of -8, or K too large for its overflow bound); the caller then
// uses the int8 path.
func packInt4FC(wv []int8, n, k int) *kernels.PackedInt4 {
	if k%8 != 0 {
		return nil
	}
	ones := make([]int32, n)
	for i := range ones {
		ones[i] = 1
	}
	p, err := kernels.PackInt4(wv, n, k, k, ones)
	if err != nil {
		return nil
	}
	return p
}

// MaxScratchBytes bounds the per-session scratch buffer of a convolution (its im2col patch
// matrix, kernels.Conv2DScratchLen); Load rejects models that need more.
const MaxScratchBytes = 1 << 28
