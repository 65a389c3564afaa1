package export

import (
	"fmt"

	"github.com/qatgo/qatgo/infer"
)

// LMForward runs a batch of Batch*Ctx token ids through a graph and returns its logits
// [Batch*Ctx, Vocab] (row-major); LMEval.Logits is one, a qat.Trainer's Forward (Graph.Out) another.
type LMForward func(ids []int) ([]float64, error)

// Logits runs the evaluation graph on Batch*Ctx token ids and returns its logits [Batch*Ctx, Vocab].
func (e *LMEval) Logits(ids []int) ([]float64, error) {
	if _, err := e.g.run(ids, nil); err != nil {
		return nil, err
	}
	return floats(e.g.net.Logits.Value()), nil
}

// GreedyGraph continues each prompt by n greedy (argmax) tokens with a graph of batch sequences
// of ctx tokens: the prompts run batch at a time, one full forward per generated token (the
// causal mask ignores the positions after the text). Every prompt must be non-empty and leave room
// for n tokens in ctx.
func GreedyGraph(f LMForward, batch, ctx, vocab int, prompts [][]int, n int) ([][]int, error) {
	out := make([][]int, len(prompts))
	for _, p := range prompts {
		if len(p) == 0 || len(p)+n > ctx {
			return nil, fmt.Errorf("export: prompt of %d tokens + %d generated does not fit a context of %d", len(p), n, ctx)
		}
	}
	ids := make([]int, batch*ctx)
	for o := 0; o < len(prompts); o += batch {
		chunk := prompts[o:min(o+batch, len(prompts))]
		text := make([][]int, len(chunk))
		for i, p := range chunk {
			text[i] = append([]int(nil), p...)
		}
		for step := 0; step < n; step++ {
			clear(ids)
			for i, t := range text {
				copy(ids[i*ctx:], t)
			}
			logits, err := f(ids)
			if err != nil {
				return nil, err
			}
			if len(logits) != batch*ctx*vocab {
				return nil, fmt.Errorf("export: forward returned %d logits, want %d", len(logits), batch*ctx*vocab)
			}
			for i, t := range text {
				row := logits[(i*ctx+len(t)-1)*vocab : (i*ctx+len(t))*vocab]
				best := 0
				for j, v := range row {
					if v > row[best] {
						best = j
					}
				}
				text[i] = append(t, best)
			}
		}
		for i, t := range text {
			out[o+i] = t[len(chunk[i]):]
		}
	}
	return out, nil
}

// GreedyRuntime continues each prompt by n greedy (argmax) tokens with the integer runtime (a
// prefill of the prompt, then one decode per token).
func GreedyRuntime(lm *infer.LM, prompts [][]int, n int) ([][]int, error) {
	s := lm.NewSession()
	out := make([][]int, len(prompts))
	for i, p := range prompts {
		s.Reset()
		l, err := s.Prefill(p)
		if err != nil {
			return nil, err
		}
		for j := 0; j < n; j++ {
			best := 0
			for k, v := range l {
				if v > l[best] {
					best = k
				}
			}
			out[i] = append(out[i], best)
			if j+1 < n {
				if l, err = s.Decode(best); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// SameShare returns the share of sequences identical in a and b (0 for none).
func SameShare(a, b [][]int) float64 {
	if len(a) == 0 || len(a) != len(b) {
		return 0
	}
	same := 0
	for i := range a {
		eq := len(a[i]) == len(b[i])
		for j := 0; eq && j < len(a[i]); j++ {
			eq = a[i][j] == b[i][j]
		}
		if eq {
			same++
		}
	}
	return float64(same) / float64(len(a))
}
