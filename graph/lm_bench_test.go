package graph

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernelOp is a custom op of this package with its UsePreallocDo.
type kernelOp interface {
	floatKernelOp
	UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error)
}

// benchOp times one op's forward kernel on float32 tensors with a reused output buffer.
func benchOp(b *testing.B, op kernelOp, in ...*tensor.Dense) {
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
	b.Run("embedding-gather", func(b *testing.B) {
		benchOp(b, newEmbeddingOp(V, H*hd, B*T), randDense32(rng, V, H*hd), ids)
	})
	b.Run("embedding-scatter", func(b *testing.B) {
		benchOp(b, newEmbeddingGradOp(V, H*hd, B*T), x, ids)
	})
	b.Run("split-heads-rope", func(b *testing.B) {
		benchOp(b, &splitHeadsOp{headsLayout: newHeadsLayout(B, T, H, hd, 10000)}, x)
	})
	b.Run("causal-softmax", func(b *testing.B) {
		benchOp(b, newCausalSoftmaxOp(B*H, T, 0.25), randDense32(rng, B*H, T, T))
	})
	b.Run("causal-softmax-grad", func(b *testing.B) {
		benchOp(b, newCausalSoftmaxGradOp(B*H, T, 0.25), randDense32(rng, B*H, T, T), randDense32(rng, B*H, T, T))
	})
}
