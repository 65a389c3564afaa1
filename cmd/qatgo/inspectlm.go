package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
)

// lmWeight describes the weight tensor of an Embedding, Linear or LMHead op: type, shape, bits,
// group size (K for per-channel) and bytes in the file.
func lmWeight(m *qmodel.Model, op *qmodel.Op) (desc, scheme string) {
	wt := &m.Tensors[op.Inputs[1]]
	k := wt.Shape[len(wt.Shape)-1]
	scheme = fmt.Sprintf("%s per-channel", wt.DType)
	bytes := len(wt.Data)
	if len(op.Inputs) == 3 {
		g := &m.Tensors[op.Inputs[2]]
		if n := g.Shape[len(g.Shape)-1]; n > 0 {
			scheme = fmt.Sprintf("%s g%d", wt.DType, k/n)
		}
		bytes += len(g.Data)
	}
	return fmt.Sprintf("%s (%s, %d B)", tensorStr(wt), scheme, bytes), scheme
}

// lmOpColumns returns the attributes, weights, weight qparams and shift columns of inspect's op
// table for a language-model op.
func lmOpColumns(m *qmodel.Model, op *qmodel.Op) (attrs, wts, wq, shift string) {
	attrs, wts, wq, shift = "-", "-", "-", "-"
	a := &op.LM
	switch op.Kind {
	case qmodel.OpEmbedding, qmodel.OpLinear, qmodel.OpLMHead:
		wts, _ = lmWeight(m, op)
		wq = qparamStr(&m.Tensors[op.Inputs[1]])
		if op.Kind == qmodel.OpLinear {
			in, wt, out := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
			if mults, err := qmodel.ConvMultipliers(in.Quant.Scales[0], wt.Quant.Scales, out.Quant.Scales[0], wt.Shape[0]); err == nil {
				lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
				for _, mu := range mults {
					lo, hi = min(lo, mu.Shift), max(hi, mu.Shift)
				}
				shift = fmt.Sprintf("%d..%d", lo, hi)
			}
		}
	case qmodel.OpRMSNorm:
		attrs = fmt.Sprintf("eps %g", a.Eps)
	case qmodel.OpRoPE:
		attrs = fmt.Sprintf("heads %d, head dim %d, theta %g, context %d", a.Heads, a.HeadDim, a.Theta, a.MaxSeq)
	case qmodel.OpAttention:
		attrs = fmt.Sprintf("heads %d, KV heads %d, head dim %d, context %d, int8 KV cache", a.Heads, a.KVHeads, a.HeadDim, a.MaxSeq)
		if km, vm, err := m.AttentionCacheMax(op); err == nil && (km != qmodel.MaxCacheLevel || vm != qmodel.MaxCacheLevel) {
			attrs += fmt.Sprintf(" (levels K ±%d, V ±%d)", km, vm)
		}
	case qmodel.OpHadamard:
		attrs = fmt.Sprintf("block %d", a.Block)
	}
	return
}

// inspectLM prints the summary of a language model: shape, parameters, weight bits per op kind
// and the memory the model and a session's KV cache need.
func inspectLM(w io.Writer, m *qmodel.Model) {
	layers, heads, kvHeads, hd, dim, hidden := 0, 0, 0, 0, 0, 0
	var params int64
	schemes := map[string]map[string]int{} // op kind -> weight scheme -> count
	for i := range m.Ops {
		op := &m.Ops[i]
		switch op.Kind {
		case qmodel.OpAttention:
			layers++
			heads, kvHeads, hd = op.LM.Heads, op.LM.KVHeads, op.LM.HeadDim
		case qmodel.OpEmbedding:
			dim = m.Tensors[op.Inputs[1]].Shape[1]
		case qmodel.OpSwiGLU:
			hidden = m.Tensors[op.Outputs[0]].NumElements()
		case qmodel.OpRMSNorm:
			params += int64(m.Tensors[op.Inputs[1]].NumElements())
		}
		switch op.Kind {
		case qmodel.OpEmbedding, qmodel.OpLinear, qmodel.OpLMHead:
			params += int64(m.Tensors[op.Inputs[1]].NumElements())
			_, sch := lmWeight(m, op)
			k := op.Kind.String()
			if schemes[k] == nil {
				schemes[k] = map[string]int{}
			}
			schemes[k][sch]++
		}
	}
	vocab := m.Tensors[m.Outputs[0]].NumElements()
	fmt.Fprintf(w, "language model: vocabulary %d, context %d, %d layers, dimension %d, %d heads (%d KV heads) of %d, SwiGLU hidden %d\n",
		vocab, m.ContextLength(), layers, dim, heads, kvHeads, hd, hidden)
	fmt.Fprintf(w, "parameters %d (%.2fM; embedding, linear, head and norm weights)\n", params, float64(params)/1e6)
	var parts []string
	for _, k := range []string{qmodel.OpEmbedding.String(), qmodel.OpLinear.String(), qmodel.OpLMHead.String()} {
		var ss []string
		for s, n := range schemes[k] {
			ss = append(ss, fmt.Sprintf("%s x%d", s, n))
		}
		sort.Strings(ss)
		if len(ss) > 0 {
			parts = append(parts, k+" "+strings.Join(ss, ", "))
		}
	}
	fmt.Fprintf(w, "weight bits %s\n", strings.Join(parts, "; "))
	fmt.Fprintf(w, "memory    KV cache %d bytes per session (int8, full context)", m.KVCacheBytes())
	if lm, err := infer.LoadLMWith(m, infer.LoadOptions{MaxWork: -1}); err == nil {
		opt := infer.LMSessionOptions{}
		fmt.Fprintf(w, "; weights %d bytes resident after loading (int4 stays packed); a session %d bytes in all (prefill batch %d)\n",
			lm.WeightBytes(), lm.SessionBytes(opt), lm.PrefillRowsFor(opt))
	} else {
		fmt.Fprintf(w, "; the runtime cannot load it: %v\n", err)
	}
}
