package qmodel

import (
	"fmt"
	"math"
)

// Work is the computation that one op (or a whole model) needs for one sample, in three counts.
// Validation bounds a model's memory (activation sizes, constants by the file size) but not its
// work: a few hundred bytes can describe a pooling window of millions of elements sliding over an
// input of millions, hours of computation. Model.Work counts it, Model.CheckWork compares it with
// a budget, and the runtime (infer.Load) refuses models over DefaultMaxWork unless told otherwise.
type Work struct {
	MACs        int64 // multiply-accumulates (Conv2D, FullyConnected)
	WindowReads int64 // elements read by sliding windows (pools, a convolution's patch matrix)
	Elements    int64 // elements read or written by elementwise passes (outputs, copies, tables)
}

// Total returns MACs + WindowReads + Elements (saturating at math.MaxInt64): one unit per
// multiply-accumulate, window read or element. The units differ in cost (an int8 MAC on a SIMD
// kernel is far cheaper than a scalar window read), so the total is an upper bound of the right
// order, not a time estimate.
func (w Work) Total() int64 { return addSat(addSat(w.MACs, w.WindowReads), w.Elements) }

func (w Work) add(o Work) Work {
	return Work{addSat(w.MACs, o.MACs), addSat(w.WindowReads, o.WindowReads), addSat(w.Elements, o.Elements)}
}

// DefaultMaxWork is the default per-sample work budget (Work.Total) of the runtime: 2^33, about
// 8.6e9 units. It admits ResNet-50-sized CNNs (about 4e9 MACs) and, per token, language models
// of a few billion parameters, while a model over it needs seconds to minutes per sample on one
// core (scalar pooling reads run at about 1e9 per second). Raise it with infer.LoadOptions.MaxWork
// or the -max-work flag of `qatgo run`, `eval` and `bench`.
const DefaultMaxWork int64 = 1 << 33

// WorkFunc returns the per-sample work of op in m, a model that passed Validate (so shapes and
// attributes are consistent). It must not overflow: use mulSat/addSat.
type WorkFunc func(m *Model, op *Op) Work

// opWork holds the work function of every op kind. An op kind added to the IR adds its function
// here (TestEveryOpKindHasWork fails otherwise): count MACs for products that accumulate, window
// reads for elements gathered by a sliding window or attention span, and elements for everything
// read or written once.
var opWork = map[OpKind]WorkFunc{
	OpQuantize:       elementwiseWork,
	OpDequantize:     elementwiseWork,
	OpAdd:            elementwiseWork,
	OpReshape:        elementwiseWork,
	OpSoftmax:        softmaxWork,
	OpConv2D:         convWork,
	OpFullyConnected: fcWork,
	OpMaxPool2D:      poolWork,
	OpAvgPool2D:      poolWork,
}

// OpWork returns the per-sample work of op, one of m's ops (m validated). An op kind without a
// work function (none, in a validated model) counts its inputs and outputs once.
func (m *Model) OpWork(op *Op) Work {
	if f, ok := opWork[op.Kind]; ok {
		return f(m, op)
	}
	return elementwiseWork(m, op)
}

// Work returns the per-sample work of the whole model and of each op. The total also counts the
// model inputs' elements once (the runtime reads them). m must have passed Validate.
func (m *Model) Work() (total Work, perOp []Work) {
	perOp = make([]Work, len(m.Ops))
	for i := range m.Ops {
		perOp[i] = m.OpWork(&m.Ops[i])
		total = total.add(perOp[i])
	}
	for _, in := range m.Inputs {
		total = total.add(Work{Elements: int64(m.Tensors[in].NumElements())})
	}
	return total, perOp
}

// CheckWork returns an error when the model's per-sample work (Work().Total()) exceeds limit; the
// error names the heaviest op. A limit of 0 means DefaultMaxWork, a negative limit no limit. m must
// have passed Validate.
func (m *Model) CheckWork(limit int64) error {
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = DefaultMaxWork
	}
	total, per := m.Work()
	if total.Total() <= limit {
		return nil
	}
	heavy := 0
	for i := range per {
		if per[i].Total() > per[heavy].Total() {
			heavy = i
		}
	}
	op := &m.Ops[heavy]
	return fmt.Errorf("qmodel: the model needs %d units of work per sample (%d multiply-accumulates, %d window reads, %d elements), more than the work budget of %d; "+
		"the heaviest op is op %d (%v %q) with %d. Raise the budget (infer.LoadOptions.MaxWork, qatgo -max-work) only if the model is meant to be this expensive",
		total.Total(), total.MACs, total.WindowReads, total.Elements, limit, heavy, op.Kind, op.Name, per[heavy].Total())
}

// elementwiseWork: every input activation read once, the output written once.
func elementwiseWork(m *Model, op *Op) Work {
	var n int64
	for _, t := range op.Inputs {
		if !m.Tensors[t].IsConst() {
			n = addSat(n, int64(m.Tensors[t].NumElements()))
		}
	}
	for _, t := range op.Outputs {
		n = addSat(n, int64(m.Tensors[t].NumElements()))
	}
	return Work{Elements: n}
}

// softmaxWork: a pass for the row maximum, one for the exponentials and their sum, one writing.
func softmaxWork(m *Model, op *Op) Work {
	return Work{Elements: mulSat(3, int64(m.Tensors[op.Outputs[0]].NumElements()))}
}

// convWork: each output element accumulates KH*KW*C/Groups products. A grouped-1 convolution also
// gathers its patch matrix (OH*OW patches of KH*KW*C elements); a depthwise one reads its windows
// directly (counted in the MACs).
func convWork(m *Model, op *Op) Work {
	w, out := &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	perOut := int64(w.Shape[1]) * int64(w.Shape[2]) * int64(w.Shape[3])
	n := int64(out.NumElements())
	wk := Work{MACs: mulSat(n, perOut), Elements: n}
	if op.Groups <= 1 {
		wk.WindowReads = mulSat(int64(out.Shape[0])*int64(out.Shape[1]), perOut)
	}
	return wk
}

// fcWork: N*K products, N outputs.
func fcWork(m *Model, op *Op) Work {
	w := &m.Tensors[op.Inputs[1]]
	return Work{MACs: mulSat(int64(w.Shape[0]), int64(w.Shape[1])), Elements: int64(w.Shape[0])}
}

// poolWork: each output element reads a KernelH x KernelW window (padding included: an upper bound).
func poolWork(m *Model, op *Op) Work {
	n := int64(m.Tensors[op.Outputs[0]].NumElements())
	return Work{WindowReads: mulSat(n, mulSat(int64(op.KernelH), int64(op.KernelW))), Elements: n}
}

// mulSat returns a*b for non-negative a, b, saturating at math.MaxInt64.
func mulSat(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// addSat returns a+b for non-negative a, b, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
