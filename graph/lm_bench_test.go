package graph

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// benchOp times one op's forward kernel on float32 tensors with a reused output buffer.
func benchOp(b *testing.B, op *lmOp, in ...*tensor.Dense) {
	vals := make([]G.Value, len(in))
	for i, t := range in {
		vals[i] = t
	}
	out := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(op.outShape()...))
	b.ReportAllocs()
	b.SetBytes(int64(4 * out.Shape().TotalSize()))
	for b.Loop() {
		if _, err := op.UsePreallocDo(out, vals...); err != nil {
			b.Fatal(err)
		}
	}
}

func randDense32(rng *rand.Rand, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	fill(t, rng)
	return t
}

// Sizes of examples/tinyllm: batch 16, ctx 64, d 64, 4 heads, vocab 256.
func BenchmarkLMOps(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const B, T, H, hd, V = 16, 64, 4, 16, 256
	ids := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(B*T))
	for i, d := 0, ids.Data().([]float32); i < len(d); i++ {
		d[i] = float32(rng.IntN(V))
	}
	x := randDense32(rng, B*T, H*hd)
	cos, sin := ropeTables(T, hd, 10000)
	b.Run("embedding-gather", func(b *testing.B) {
		benchOp(b, &lmOp{kind: lmGather, vocab: V, dim: H * hd, n: B * T}, randDense32(rng, V, H*hd), ids)
	})
	b.Run("embedding-scatter", func(b *testing.B) {
		benchOp(b, &lmOp{kind: lmScatter, vocab: V, dim: H * hd, n: B * T}, x, ids)
	})
	b.Run("split-heads-rope", func(b *testing.B) {
		benchOp(b, &lmOp{kind: lmSplit, batch: B, seq: T, heads: H, hd: hd, base: 10000, cos: cos, sin: sin}, x)
	})
	b.Run("causal-softmax", func(b *testing.B) {
		benchOp(b, &lmOp{kind: lmSoftmax, m: B * H, seq: T, scale: 0.25}, randDense32(rng, B*H, T, T))
	})
	b.Run("causal-softmax-grad", func(b *testing.B) {
		benchOp(b, &lmOp{kind: lmSoftmaxGrad, m: B * H, seq: T, scale: 0.25}, randDense32(rng, B*H, T, T), randDense32(rng, B*H, T, T))
	})
}
