package infer

import (
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
)

// TestLMOpRunnerChainMatchesDecode runs a random LM op by op through an LMOpRunner, each op on
// the outputs of the runner's earlier ops, and checks every logit against token-by-token
// decoding with a session (an independent path: GEMV instead of GEMM, one row per attention
// call). With the session's activations as inputs, every op's output is the session's too.
func TestLMOpRunnerChainMatchesDecode(t *testing.T) {
	for _, c := range []struct {
		bits, group int
	}{{8, 0}, {4, 16}} {
		lm, m := loadRandomLM(t, smallLMConfig(c.bits, c.group), 11)
		r := rand.New(rand.NewPCG(3, 4))
		toks := make([]int, lm.ContextLength())
		for i := range toks {
			toks[i] = r.IntN(lm.Vocab())
		}
		dec := lm.NewSession()
		var want []float32
		for _, tk := range toks {
			l, err := dec.Decode(tk)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, l...)
		}
		run := lm.NewOpRunner()
		vals := map[int][]int8{} // runner outputs by tensor
		var logits []float32
		for i := range m.Ops {
			op := &m.Ops[i]
			var ins [][]int8
			var tk []int
			if op.Kind == qmodel.OpEmbedding {
				tk = toks
			}
			for _, in := range op.Inputs {
				if v, ok := vals[in]; ok {
					ins = append(ins, v)
				}
			}
			out, err := run.Run(op.Name, tk, ins...)
			if err != nil {
				t.Fatalf("op %s: %v", op.Name, err)
			}
			switch {
			case out.Int8 != nil:
				vals[op.Outputs[0]] = append([]int8(nil), out.Int8...)
			case out.Float32 != nil:
				logits = out.Float32
			}
		}
		if len(logits) != len(want) {
			t.Fatalf("bits %d: %d logits, want %d", c.bits, len(logits), len(want))
		}
		for i := range want {
			if logits[i] != want[i] {
				t.Fatalf("bits %d: logit %d: op by op %v, decode %v", c.bits, i, logits[i], want[i])
			}
		}
		// The session's own activations (one prefill) fed to single ops give its outputs.
		s := lm.NewSessionWith(LMSessionOptions{PrefillRows: lm.ContextLength()})
		if _, err := s.Prefill(toks); err != nil {
			t.Fatal(err)
		}
		for i := range m.Ops {
			op := &m.Ops[i]
			if op.Kind == qmodel.OpEmbedding || m.Tensors[op.Outputs[0]].DType != qmodel.Int8 {
				continue
			}
			var ins [][]int8
			for _, in := range op.Inputs {
				if m.Tensors[in].DType == qmodel.Int8 && !m.Tensors[in].IsConst() {
					a, err := s.Activation(m.Tensors[in].Name)
					if err != nil {
						t.Fatal(err)
					}
					ins = append(ins, a)
				}
			}
			out, err := run.Run(op.Name, nil, ins...)
			if err != nil {
				t.Fatalf("op %s: %v", op.Name, err)
			}
			got, _ := s.Activation(op.Name)
			for j := range got {
				if out.Int8[j] != got[j] {
					t.Fatalf("op %s alone: element %d = %d, session %d", op.Name, j, out.Int8[j], got[j])
				}
			}
		}
	}
}

func TestLMOpRunnerBadInput(t *testing.T) {
	lm, _ := loadRandomLM(t, smallLMConfig(8, 0), 12)
	run := lm.NewOpRunner()
	d := 32
	for _, tc := range []struct {
		name string
		op   string
		toks []int
		ins  [][]int8
	}{
		{"unknown op", "nope", nil, [][]int8{make([]int8, d)}},
		{"embedding with int8", "tok_emb", nil, [][]int8{make([]int8, d)}},
		{"token outside vocabulary", "tok_emb", []int{64}, nil},
		{"no tokens", "tok_emb", []int{}, nil},
		{"missing input", "blk0.attn.res", nil, [][]int8{make([]int8, d)}},
		{"ragged inputs", "blk0.attn.res", nil, [][]int8{make([]int8, d), make([]int8, 2*d)}},
		{"partial row", "blk0.attn_norm", nil, [][]int8{make([]int8, d+1)}},
		{"too many rows", "blk0.attn_norm", nil, [][]int8{make([]int8, 25*d)}},
		{"empty", "blk0.attn_norm", nil, [][]int8{{}}},
		{"tokens for a norm", "blk0.attn_norm", []int{1}, [][]int8{make([]int8, d)}},
	} {
		if _, err := run.Run(tc.op, tc.toks, tc.ins...); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
