package export

import (
	"fmt"
	"math"
	"sort"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmspec"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lmRuntime is the integer model the evaluation graph takes the value of every runtime op from
// (graph.LMOptions.Runtime): the exported model, whose ops run one at a time on the graph's int8
// levels, by default with the specification's arithmetic (internal/lmspec, ArithSpec), as a
// diagnostic with the runtime's own code (an infer.LMOpRunner, ArithRuntime). The graph's float
// ops stay in the graph: they give the values while Lower calibrates (no model exists yet), with
// ArithFloat, for the parity report's float-arithmetic figures, and the gradients.
type lmRuntime struct {
	qm     *qmodel.Model
	run    *infer.LMOpRunner
	spec   *lmspec.Runner
	ops    map[string]int // op index by name
	deq    map[string]int // LMHead name -> the Dequantize op of its output
	batch  int
	ctx    int
	heads  int
	toks   []int
	levels [][]int8
}

// LMArith selects the arithmetic of the evaluation graph between its quantization points.
type LMArith int

const (
	// ArithSpec (NewLMEval's default) computes every runtime op with internal/lmspec, an
	// implementation of the integer ops written from their specification independently of
	// package infer (and checked against it bit for bit in its tests): the graph's activations,
	// logits and greedy generations then agree with the runtime's only as far as the two
	// implementations of the contract agree.
	ArithSpec LMArith = iota
	// ArithRuntime computes every runtime op with infer's own code (infer.LMOpRunner): agreement
	// with the runtime by construction, a diagnostic only.
	ArithRuntime
	// ArithFloat keeps the graph's float ops (RMSNorm, RoPE, attention, SwiGLU, the Hadamard,
	// the adds, the linears' requantization and the logits in float, as during Lower's
	// calibration and in training).
	ArithFloat
)

// String names the arithmetic as the reports print it.
func (a LMArith) String() string {
	switch a {
	case ArithSpec:
		return "integer spec (internal/lmspec)"
	case ArithRuntime:
		return "runtime's own ops (infer, by construction)"
	case ArithFloat:
		return "float ops"
	}
	return fmt.Sprintf("LMArith(%d)", int(a))
}

// runtimeOp is the evaluation graph's graph.LMRuntimeFunc: a substitute whose value is the integer
// op's when the graph is bound to the exported model (e.exact) and ref's otherwise.
func (e *LMEval) runtimeOp(op string, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
	e.subs = append(e.subs, op)
	return graph.RuntimeSubstitute(op, func(out, rv []float64, in [][]float64, shapes []tensor.Shape) error {
		if !e.exact {
			copy(out, rv)
			return nil
		}
		return e.rt.compute(op, out, in, shapes, e.arith == ArithSpec)
	}, ref, inputs...)
}

// bindRuntime loads the exported model and switches the graph to the runtime's arithmetic.
// Every runtime op but the Dequantize of the logits must have a substitute in the graph (and
// every substitute an op), or the graph would not model the runtime everywhere.
func (e *LMEval) bindRuntime() error {
	qm := e.qm
	lm, err := infer.LoadLM(qm)
	if err != nil {
		return err
	}
	c := e.lm.Config
	spec, err := lmspec.New(qm)
	if err != nil {
		return err
	}
	r := &lmRuntime{qm: qm, run: lm.NewOpRunner(), spec: spec, ops: map[string]int{}, deq: map[string]int{},
		batch: e.batch, ctx: c.Ctx, heads: c.Heads}
	if lm.ContextLength() < c.Ctx {
		return fmt.Errorf("export: model context %d, the LM has %d", lm.ContextLength(), c.Ctx)
	}
	producer := map[int]string{}
	for i := range qm.Ops {
		op := &qm.Ops[i]
		r.ops[op.Name] = i
		producer[op.Outputs[0]] = op.Name
		if op.Kind == qmodel.OpDequantize {
			if p, ok := producer[op.Inputs[0]]; ok {
				r.deq[p] = i
			}
		}
	}
	subs := map[string]bool{}
	for _, s := range e.subs {
		if _, ok := r.ops[s]; !ok {
			return fmt.Errorf("export: the LM graph substitutes op %q, which the integer model does not have", s)
		}
		subs[s] = true
	}
	var missing []string
	for i := range qm.Ops {
		if op := &qm.Ops[i]; op.Kind != qmodel.OpDequantize && !subs[op.Name] {
			missing = append(missing, op.Name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("export: the LM graph does not model the runtime ops %v", missing)
	}
	e.rt = r
	e.SetArith(ArithSpec)
	return nil
}

// SetArith selects the graph's arithmetic between the quantization points (ArithSpec after
// NewLMEval). Without an exported model (Lower's calibration) the graph always uses its float ops.
func (e *LMEval) SetArith(a LMArith) {
	e.arith = a
	e.exact = a != ArithFloat && e.rt != nil
}

// Arith returns the arithmetic the graph uses between the quantization points.
func (e *LMEval) Arith() LMArith {
	if !e.exact {
		return ArithFloat
	}
	return e.arith
}

// UseFloatArith switches the graph to its float ops (true, SetArith(ArithFloat)) or back to the
// integer specification's arithmetic (false, SetArith(ArithSpec), NewLMEval's default).
func (e *LMEval) UseFloatArith(on bool) {
	if on {
		e.SetArith(ArithFloat)
	} else {
		e.SetArith(ArithSpec)
	}
}

// run runs op name on tokens or int8 inputs with the specification's arithmetic (spec) or the
// runtime's; a Dequantize of int32 logits reads the previous call's output.
func (r *lmRuntime) runOp(spec bool, name string, toks []int, ins ...[]int8) (infer.LMOpOutput, error) {
	if !spec {
		return r.run.Run(name, toks, ins...)
	}
	o, err := r.spec.Run(name, toks, ins...)
	return infer.LMOpOutput{Int8: o.Int8, Int32: o.Int32, Float32: o.Float32}, err
}

// compute writes the value of runtime op name (spec: with the specification's arithmetic) for the graph's inputs in (shapes[0] is the
// output's shape, shapes[1:] the inputs'): per sequence, the inputs' int8 levels run through the
// op, and its output levels are dequantized (the logits of the head: the runtime's float32).
func (r *lmRuntime) compute(name string, out []float64, in [][]float64, shapes []tensor.Shape, spec bool) error {
	i, ok := r.ops[name]
	if !ok {
		return fmt.Errorf("export: the integer model has no op %q", name)
	}
	op := &r.qm.Ops[i]
	var act []int
	for _, t := range op.Inputs {
		if tt := &r.qm.Tensors[t]; !tt.IsConst() && tt.DType == qmodel.Int8 {
			act = append(act, t)
		}
	}
	emb := op.Kind == qmodel.OpEmbedding
	if (emb && len(in) != 1) || (!emb && len(in) != len(act)) {
		return fmt.Errorf("export: runtime op %q has %d activation inputs, the graph gives %d", name, len(act), len(in))
	}
	T := r.ctx
	for b := 0; b < r.batch; b++ {
		var toks []int
		ins := r.levels[:0]
		if emb {
			r.toks = r.toks[:0]
			for _, v := range in[0][b*T : (b+1)*T] {
				r.toks = append(r.toks, int(v))
			}
			toks = r.toks
		}
		for j, t := range act {
			if j == len(r.levels) {
				r.levels = append(r.levels, nil)
			}
			r.levels[j] = r.toLevels(r.levels[j], in[j], shapes[j+1], b, &r.qm.Tensors[t])
			ins = r.levels[:j+1]
		}
		res, err := r.runOp(spec, name, toks, ins...)
		if err == nil && res.Int32 != nil {
			d, ok := r.deq[name]
			if !ok {
				return fmt.Errorf("export: runtime op %q has int32 output and no Dequantize", name)
			}
			res, err = r.runOp(spec, r.qm.Ops[d].Name, nil)
		}
		if err != nil {
			return err
		}
		w := r.qm.Tensors[op.Outputs[0]].NumElements()
		if res.Int8 != nil {
			p := r.qm.Tensors[op.Outputs[0]].Quant.Params()
			s := float64(p.Scale)
			r.fromRows(out, shapes[0], b, w, func(k int) float64 { return s * float64(int32(res.Int8[k])-p.ZeroPoint) })
		} else {
			r.fromRows(out, shapes[0], b, w, func(k int) float64 { return float64(res.Float32[k]) })
		}
	}
	return nil
}

// rowIndex maps element j of row t of sequence b (runtime layout [T][w]) to the graph's index:
// [Batch*Ctx, w], or per head [Batch*Heads, Ctx, w/Heads] for a 3-axis shape.
func (r *lmRuntime) rowIndex(s tensor.Shape, b, t, j, w int) int {
	if s.Dims() == 3 {
		hd := w / r.heads
		return ((b*r.heads+j/hd)*r.ctx+t)*hd + j%hd
	}
	return (b*r.ctx+t)*w + j
}

// toLevels returns sequence b of the graph values x (shape s) as int8 levels of tensor t in the
// runtime's row layout, in buf.
func (r *lmRuntime) toLevels(buf []int8, x []float64, s tensor.Shape, b int, t *qmodel.Tensor) []int8 {
	w := t.NumElements()
	p := t.Quant.Params()
	if cap(buf) < r.ctx*w {
		buf = make([]int8, r.ctx*w)
	}
	buf = buf[:r.ctx*w]
	for tt := 0; tt < r.ctx; tt++ {
		for j := 0; j < w; j++ {
			buf[tt*w+j] = int8(quant.QuantizeValue(x[r.rowIndex(s, b, tt, j, w)], float64(p.Scale), p.ZeroPoint, math.MinInt8, math.MaxInt8))
		}
	}
	return buf
}

// fromRows writes sequence b of the runtime's rows (w values each, value(k) for flat index k)
// into out (graph shape s).
func (r *lmRuntime) fromRows(out []float64, s tensor.Shape, b, w int, value func(k int) float64) {
	for t := 0; t < r.ctx; t++ {
		for j := 0; j < w; j++ {
			out[r.rowIndex(s, b, t, j, w)] = value(t*w + j)
		}
	}
}
