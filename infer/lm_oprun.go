package infer

import (
	"fmt"

	"github.com/qatgo/qatgo/qmodel"
)

// LMOpRunner runs the ops of a loaded LM one at a time on inputs the caller supplies: each call
// runs one op over one sequence of rows at positions 0, 1, ... of a context of its own (an
// Attention op first writes its key and value rows to the runner's KV cache, as a prefill does).
// It executes the steps an LMSession executes, so for the same int8 inputs its outputs are the
// session's bit for bit. Package export uses it to compute the fake-quant graph's value of every
// runtime op with the runtime's own integer arithmetic, and to run one op alone in its parity
// report. A runner is not safe for concurrent use.
type LMOpRunner struct {
	s     *LMSession
	index map[string]int // op index by name
}

// LMOpOutput is the output of one op run by an LMOpRunner: one of the fields is set (rows x
// elements per token, row-major), Int8 in the output tensor's quantization, Int32 for the
// accumulators of an LMHead, Float32 for a Dequantize. The slices belong to the runner and are
// valid until its next call.
type LMOpOutput struct {
	Int8    []int8
	Int32   []int32
	Float32 []float32
}

// NewOpRunner returns a runner for the ops of lm; a sequence may hold up to ContextLength rows.
func (lm *LM) NewOpRunner() *LMOpRunner {
	r := &LMOpRunner{s: lm.NewSessionWith(LMSessionOptions{PrefillRows: lm.ctx}), index: map[string]int{}}
	for i := range lm.steps {
		r.index[lm.steps[i].name] = i
	}
	return r
}

// Run runs the op named name. An Embedding reads tokens (ins empty); every other op reads ins, one
// int8 slice per activation input in the op's input order (Attention: queries, keys, values),
// each rows x the tensor's elements per token, in the tensor's quantization. A Dequantize of the
// int32 logits takes them from the previous call (the LMHead's output): ins empty. All inputs
// must hold the same number of rows, from 1 to the context length.
func (r *LMOpRunner) Run(name string, tokens []int, ins ...[]int8) (LMOpOutput, error) {
	i, ok := r.index[name]
	if !ok {
		return LMOpOutput{}, fmt.Errorf("infer: model %q has no op %q", r.s.lm.qm.Name, name)
	}
	s, lm := r.s, r.s.lm
	st := &lm.steps[i]
	var act []int // the op's activation inputs
	for _, t := range lm.qm.Ops[i].Inputs {
		if lm.kind[t] == bufI8 {
			act = append(act, t)
		}
	}
	rows := len(tokens)
	switch {
	case st.kind == qmodel.OpEmbedding:
		if len(ins) != 0 {
			return LMOpOutput{}, fmt.Errorf("infer: op %q (Embedding) reads tokens, not int8 inputs", name)
		}
		if err := s.checkTokens(tokens); err != nil {
			return LMOpOutput{}, err
		}
	case st.kind == qmodel.OpDequantize && !st.deqFromInt8:
		if len(ins) != 0 {
			return LMOpOutput{}, fmt.Errorf("infer: op %q dequantizes the previous op's int32 output: no inputs", name)
		}
		rows = s.lastRows
	default:
		if len(ins) != len(act) || len(tokens) != 0 {
			return LMOpOutput{}, fmt.Errorf("infer: op %q (%v) has %d int8 inputs, got %d (and %d tokens)", name, st.kind, len(act), len(ins), len(tokens))
		}
		w := lm.width[act[0]]
		rows = len(ins[0]) / w
		for j, t := range act {
			if len(ins[j]) != rows*lm.width[t] {
				return LMOpOutput{}, fmt.Errorf("infer: op %q input %d has %d values, want %d rows x %d", name, j, len(ins[j]), rows, lm.width[t])
			}
		}
		for j, t := range act {
			copy(s.i8[t], ins[j])
		}
	}
	if rows < 1 || rows > s.rows {
		return LMOpOutput{}, fmt.Errorf("infer: op %q on %d rows: want 1 to %d", name, rows, s.rows)
	}
	s.pos = 0
	s.step(st, tokens, rows)
	s.lastRows = rows
	n := rows * lm.width[st.out]
	switch lm.kind[st.out] {
	case bufI8:
		return LMOpOutput{Int8: s.i8[st.out][:n]}, nil
	case bufI32:
		return LMOpOutput{Int32: s.i32[st.out][:n]}, nil
	default:
		return LMOpOutput{Float32: s.f32[st.out][:n]}, nil
	}
}
