package lmspec_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/internal/lmspec"
	"github.com/qatgo/qatgo/qmodel"
)

// The specification ops against infer's runtime ops (infer.LMOpRunner, which runs the session's
// own steps): two implementations of the integer contract, bit for bit, on random models (int8,
// int4 per channel and per group, grouped-query attention, online Hadamard, a narrowed KV-cache
// range, gains of both signs and zero) and on random, saturating, constant and zero-point rows.

// variant returns a copy of m with random RMSNorm gains (some negative, some zero) and, when
// k > 0, the Attention cache range (k, v).
func variant(m *qmodel.Model, r *rand.Rand, k, v int32) *qmodel.Model {
	n := *m
	n.Tensors = append([]qmodel.Tensor(nil), m.Tensors...)
	n.Ops = append([]qmodel.Op(nil), m.Ops...)
	for i := range n.Ops {
		op := &n.Ops[i]
		switch op.Kind {
		case qmodel.OpRMSNorm:
			g := &n.Tensors[op.Inputs[1]]
			vals := make([]float32, g.NumElements())
			for j := range vals {
				switch r.IntN(8) {
				case 0:
					vals[j] = 0
				case 1:
					vals[j] = -float32(r.Float64() * 3)
				default:
					vals[j] = float32(r.Float64() * 3)
				}
			}
			g.Data = qmodel.Float32Data(vals)
		case qmodel.OpAttention:
			if k > 0 {
				n.Tensors = append(n.Tensors, qmodel.Tensor{Name: op.Name + "/cache_max", DType: qmodel.Int32, Shape: []int{2},
					Quant: qmodel.PerTensor(1, 0), Data: qmodel.Int32Data([]int32{k, v})})
				op.Inputs = append(append([]int(nil), op.Inputs...), len(n.Tensors)-1)
			}
		}
	}
	return &n
}

// rowsOf returns rows x w int8 inputs of the given pattern around zero point z.
func rowsOf(r *rand.Rand, pattern, rows, w int, z int32) []int8 {
	x := make([]int8, rows*w)
	for i := range x {
		switch pattern {
		case 0: // uniform
			x[i] = int8(r.IntN(256) - 128)
		case 1: // saturated both ways
			x[i] = [2]int8{-128, 127}[r.IntN(2)]
		case 2: // zero rows (the zero point) with a few extremes
			x[i] = int8(max(-128, min(127, z)))
			if r.IntN(16) == 0 {
				x[i] = [2]int8{-128, 127}[r.IntN(2)]
			}
		case 3: // constant rows of the maximum
			x[i] = 127
		case 4: // constant rows of the minimum
			x[i] = -128
		default: // small values near the zero point
			x[i] = int8(max(-128, min(127, int(z)+r.IntN(7)-3)))
		}
	}
	return x
}

func TestSpecOpsMatchRuntime(t *testing.T) {
	cfgs := []lmref.Config{
		{Vocab: 64, Dim: 32, Layers: 1, Heads: 4, KVHeads: 2, Hidden: 64, Ctx: 12, Bits: 8, Hadamard: true},
		{Vocab: 64, Dim: 64, Layers: 1, Heads: 4, Hidden: 128, Ctx: 12, Bits: 4, Group: 32, Hadamard: true},
		{Vocab: 48, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 10, Bits: 4},
		{Vocab: 48, Dim: 24, Layers: 1, Heads: 2, KVHeads: 1, Hidden: 40, Ctx: 9, Bits: 8},
	}
	r := rand.New(rand.NewPCG(7, 11))
	checked := map[qmodel.OpKind]int{}
	for ci, c := range cfgs {
		base, err := lmref.RandomLM(c, uint64(ci+1))
		if err != nil {
			t.Fatal(err)
		}
		for vi, cr := range [][2]int32{{0, 0}, {7, 5}, {127, 1}} {
			m := variant(base, r, cr[0], cr[1])
			lm, err := infer.LoadLM(m)
			if err != nil {
				t.Fatal(err)
			}
			run := lm.NewOpRunner()
			spec, err := lmspec.New(m)
			if err != nil {
				t.Fatal(err)
			}
			for oi := range m.Ops {
				op := &m.Ops[oi]
				for pattern := 0; pattern < 6; pattern++ {
					rows := 1 + r.IntN(c.Ctx)
					if pattern == 0 {
						rows = c.Ctx
					}
					name := fmt.Sprintf("cfg %d variant %d op %s pattern %d rows %d", ci, vi, op.Name, pattern, rows)
					var toks []int
					var ins [][]int8
					switch {
					case op.Kind == qmodel.OpEmbedding:
						for i := 0; i < rows; i++ {
							toks = append(toks, r.IntN(c.Vocab))
						}
					case op.Kind == qmodel.OpDequantize:
						continue // checked with its LMHead below
					default:
						for _, ti := range op.Inputs {
							tt := &m.Tensors[ti]
							if tt.IsConst() || tt.DType != qmodel.Int8 {
								continue
							}
							ins = append(ins, rowsOf(r, pattern, rows, tt.NumElements(), tt.Quant.ZeroPoints[0]))
						}
					}
					got, err := run.Run(op.Name, toks, ins...)
					if err != nil {
						t.Fatalf("%s: infer: %v", name, err)
					}
					want, err := spec.Run(op.Name, toks, ins...)
					if err != nil {
						t.Fatalf("%s: spec: %v", name, err)
					}
					if !slices.Equal(got.Int8, want.Int8) || !slices.Equal(got.Int32, want.Int32) || !slices.Equal(got.Float32, want.Float32) {
						t.Fatalf("%s: runtime and specification differ:\nruntime %v %v\nspec    %v %v", name, got.Int8, got.Int32, want.Int8, want.Int32)
					}
					if len(got.Int8)+len(got.Int32) == 0 {
						t.Fatalf("%s: empty output", name)
					}
					checked[op.Kind]++
					if op.Kind == qmodel.OpLMHead {
						for di := range m.Ops {
							d := &m.Ops[di]
							if d.Kind == qmodel.OpDequantize && d.Inputs[0] == op.Outputs[0] {
								g, err1 := run.Run(d.Name, nil)
								w, err2 := spec.Run(d.Name, nil)
								if err1 != nil || err2 != nil {
									t.Fatalf("%s: dequantize: %v, %v", name, err1, err2)
								}
								if !slices.Equal(g.Float32, w.Float32) || len(g.Float32) == 0 {
									t.Fatalf("%s: dequantized logits differ", name)
								}
								checked[qmodel.OpDequantize]++
							}
						}
					}
				}
			}
		}
	}
	for _, k := range []qmodel.OpKind{qmodel.OpEmbedding, qmodel.OpRMSNorm, qmodel.OpLinear, qmodel.OpRoPE, qmodel.OpAttention,
		qmodel.OpSwiGLU, qmodel.OpHadamard, qmodel.OpAdd, qmodel.OpLMHead, qmodel.OpDequantize} {
		if checked[k] == 0 {
			t.Errorf("no %v op checked", k)
		}
	}
	t.Logf("ops checked bit for bit: %v", checked)
}
