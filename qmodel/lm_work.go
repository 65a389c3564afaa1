package qmodel

import "math/bits"

// Work of the language-model ops, per sample = per token (decode). Attention counts a full
// context: every query head reads MaxSeq cached keys and values.
func init() {
	opWork[OpEmbedding] = elementwiseWork // one table row copied out (the ids input is one element)
	opWork[OpRMSNorm] = elementwiseWork
	opWork[OpLinear] = fcWork
	opWork[OpLMHead] = fcWork
	opWork[OpRoPE] = ropeWork
	opWork[OpSwiGLU] = elementwiseWork
	opWork[OpHadamard] = hadamardWork
	opWork[OpAttention] = attentionWork
}

// hadamardWork: log2(Block) butterfly passes over the elements, plus the final write.
func hadamardWork(m *Model, op *Op) Work {
	n := int64(m.Tensors[op.Outputs[0]].NumElements())
	passes := int64(1)
	if op.LM.Block > 1 {
		passes += int64(bits.Len(uint(op.LM.Block)) - 1)
	}
	return Work{Elements: mulSat(n, passes)}
}

// attentionWork: for each query head, HeadDim products against each of MaxSeq cached keys and
// as many against the cached values (MACs), MaxSeq scores through the softmax (window reads),
// and the output written once.
func attentionWork(m *Model, op *Op) Work {
	a := &op.LM
	perHead := mulSat(int64(a.MaxSeq), int64(a.HeadDim))
	return Work{
		MACs:        mulSat(2, mulSat(int64(a.Heads), perHead)),
		WindowReads: mulSat(int64(a.Heads), int64(a.MaxSeq)),
		Elements:    int64(m.Tensors[op.Outputs[0]].NumElements()),
	}
}

// ropeWork: the input read and the output written, plus the op's cos/sin table of MaxSeq*HeadDim/2
// entries that the runtime computes at load, counted here as if per token (an upper bound), so
// that the budget also bounds the load of a small file with huge tables.
func ropeWork(m *Model, op *Op) Work {
	w := elementwiseWork(m, op)
	w.Elements = addSat(w.Elements, mulSat(int64(op.LM.MaxSeq), int64(op.LM.HeadDim/2)))
	return w
}
