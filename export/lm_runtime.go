package export

import (
	"fmt"
	"math"
	"sort"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lmRuntime is the integer model the evaluation graph takes the value of every runtime op from
// (graph.LMOptions.Runtime): the exported model, loaded by package infer, whose ops an
// infer.LMOpRunner runs one at a time on the graph's int8 levels. The graph's float ops stay in
// the graph: they give the values while Lower calibrates (no model exists yet), after
// LMEval.UseFloatArith, for the parity report's float-arithmetic figures, and the gradients.
type lmRuntime struct {
	qm     *qmodel.Model
	run    *infer.LMOpRunner
	ops    map[string]int // op index by name
	deq    map[string]int // LMHead name -> the Dequantize op of its output
	batch  int
	ctx    int
	heads  int
	toks   []int
	levels [][]int8
}

// runtimeOp is the evaluation graph's graph.LMRuntimeFunc: a substitute whose value is the runtime
// op's when the graph is bound to the exported model (e.exact) and ref's otherwise.
func (e *LMEval) runtimeOp(op string, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
	e.subs = append(e.subs, op)
	return graph.RuntimeSubstitute(op, func(out, rv []float64, in [][]float64, shapes []tensor.Shape) error {
		if !e.exact {
			copy(out, rv)
			return nil
		}
		return e.rt.compute(op, out, in, shapes)
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
	r := &lmRuntime{qm: qm, run: lm.NewOpRunner(), ops: map[string]int{}, deq: map[string]int{},
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
	e.rt, e.exact = r, true
	return nil
}

// UseFloatArith switches the graph between the runtime's integer arithmetic (false, the default
// of NewLMEval: every runtime op's value is infer's, so the graph's activations, logits, loss and
// greedy generations are the runtime's bit for bit) and its float ops between the quantization
// points (true: RMSNorm, RoPE, attention, SwiGLU, the Hadamard, the adds, the linears'
// requantization and the logits in float, as during Lower's calibration and in training).
func (e *LMEval) UseFloatArith(on bool) { e.exact = !on && e.rt != nil }

// compute writes the value of runtime op name for the graph's inputs in (shapes[0] is the
// output's shape, shapes[1:] the inputs'): per sequence, the inputs' int8 levels run through the
// op, and its output levels are dequantized (the logits of the head: the runtime's float32).
func (r *lmRuntime) compute(name string, out []float64, in [][]float64, shapes []tensor.Shape) error {
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
		res, err := r.run.Run(name, toks, ins...)
		if err == nil && res.Int32 != nil {
			d, ok := r.deq[name]
			if !ok {
				return fmt.Errorf("export: runtime op %q has int32 output and no Dequantize", name)
			}
			res, err = r.run.Run(r.qm.Ops[d].Name, nil)
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
