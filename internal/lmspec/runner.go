package lmspec

import (
	"fmt"

	"github.com/qatgo/qatgo/qmodel"
)

// Output is the output of one op run by a Runner: one field is set (rows x elements per token,
// row-major): Int8 in the output tensor's quantization, Int32 for the accumulators of an LMHead,
// Float32 for a Dequantize.
type Output struct {
	Int8    []int8
	Int32   []int32
	Float32 []float32
}

// Runner runs the ops of a language model one at a time with the specification's arithmetic.
// A Runner is not safe for concurrent use.
type Runner struct {
	m     *qmodel.Model
	index map[string]int
	last  []int32 // the int32 output of the last LMHead run, for a Dequantize of it
}

// New returns a runner for m, which must be a valid model.
func New(m *qmodel.Model) (*Runner, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{m: m, index: map[string]int{}}
	for i := range m.Ops {
		r.index[m.Ops[i].Name] = i
	}
	return r, nil
}

// Run runs the op named name over one sequence of rows at positions 0, 1, ...: an Embedding
// reads tokens (ins empty); every other op reads ins, one int8 slice per activation input (the
// non-constant int8 inputs in the op's input order; Attention: queries, keys, values), each rows
// x the tensor's elements. A Dequantize of int32 logits reads the last LMHead's output (ins
// empty). The returned slices are new.
func (r *Runner) Run(name string, tokens []int, ins ...[]int8) (Output, error) {
	i, ok := r.index[name]
	if !ok {
		return Output{}, fmt.Errorf("lmspec: model has no op %q", name)
	}
	m := r.m
	op := &m.Ops[i]
	var act []*qmodel.Tensor
	for _, t := range op.Inputs {
		if tt := &m.Tensors[t]; !tt.IsConst() && tt.DType == qmodel.Int8 {
			act = append(act, tt)
		}
	}
	rows := len(tokens)
	switch {
	case op.Kind == qmodel.OpEmbedding:
		if len(ins) != 0 {
			return Output{}, fmt.Errorf("lmspec: op %q reads tokens, not int8 inputs", name)
		}
	case op.Kind == qmodel.OpDequantize && m.Tensors[op.Inputs[0]].DType == qmodel.Int32:
		if r.last == nil {
			return Output{}, fmt.Errorf("lmspec: op %q: no LMHead output to dequantize", name)
		}
		return Output{Float32: dequantizeInt32(m, op, r.last)}, nil
	default:
		if len(ins) != len(act) || len(act) == 0 {
			return Output{}, fmt.Errorf("lmspec: op %q has %d int8 inputs, got %d", name, len(act), len(ins))
		}
		rows = len(ins[0]) / act[0].NumElements()
		for j, t := range act {
			if len(ins[j]) != rows*t.NumElements() {
				return Output{}, fmt.Errorf("lmspec: op %q input %d has %d values, want %d rows x %d", name, j, len(ins[j]), rows, t.NumElements())
			}
		}
	}
	if rows < 1 {
		return Output{}, fmt.Errorf("lmspec: op %q on %d rows", name, rows)
	}
	var (
		out Output
		err error
	)
	switch op.Kind {
	case qmodel.OpEmbedding:
		out.Int8, err = embedding(m, op, tokens)
	case qmodel.OpRMSNorm:
		out.Int8, err = rmsNorm(m, op, rows, ins[0])
	case qmodel.OpLinear:
		out.Int8, err = linear(m, op, rows, ins[0])
	case qmodel.OpLMHead:
		out.Int32, err = lmHead(m, op, rows, ins[0])
		r.last = out.Int32
	case qmodel.OpRoPE:
		out.Int8, err = rope(m, op, rows, ins[0])
	case qmodel.OpAttention:
		out.Int8, err = attention(m, op, rows, ins[0], ins[1], ins[2])
	case qmodel.OpSwiGLU:
		out.Int8, err = swiGLU(m, op, ins[0], ins[1])
	case qmodel.OpHadamard:
		out.Int8, err = hadamard(m, op, rows, ins[0])
	case qmodel.OpAdd:
		out.Int8, err = add(m, op, ins[0], ins[1])
	case qmodel.OpDequantize:
		out.Float32 = dequantizeInt8(m, op, ins[0])
	default:
		err = fmt.Errorf("lmspec: op kind %v is not a language-model op", op.Kind)
	}
	if err != nil {
		return Output{}, fmt.Errorf("lmspec: op %q: %w", name, err)
	}
	return out, nil
}
