package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Every custom op of the package gets a central-difference check of its gradient over all
// elements of small float64 inputs (gradCheckNodes, internal/gradcheck). The LM ops are checked
// in lm_ops_test.go (Embedding, SplitHeads, MergeHeads, CausalSoftmax); the per-channel ops, the
// rotating merge (only built as SplitHeads' gradient) and average pooling here.

func TestChanOpsGradients(t *testing.T) {
	for _, shape := range []tensor.Shape{{3, 2}, {2, 3, 4}, {2, 2, 3, 2}} {
		for axis := range shape.Dims() {
			C := shape[axis]
			for _, tc := range []struct {
				name string
				// build returns the op's output and the inputs to differentiate
				build func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node)
			}{
				{"ChanAffine", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) {
					x, a, b := lmInput(g, rng, "x", shape...), lmInput(g, rng, "a", C), lmInput(g, rng, "b", C)
					return G.Must(ChanAffine(x, a, b, axis)), []*G.Node{x, a, b}
				}},
				{"ChanScale", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) {
					x, a := lmInput(g, rng, "x", shape...), lmInput(g, rng, "a", C)
					return G.Must(ChanScale(x, a, axis)), []*G.Node{x, a}
				}},
				{"ChanShift", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) {
					x, b := lmInput(g, rng, "x", shape...), lmInput(g, rng, "b", C)
					return G.Must(ChanShift(x, b, axis)), []*G.Node{x, b}
				}},
				{"ChanSum", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) {
					x := lmInput(g, rng, "x", shape...)
					return G.Must(ChanSum(x, axis)), []*G.Node{x}
				}},
				{"ChanDot", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) {
					x, y := lmInput(g, rng, "x", shape...), lmInput(g, rng, "y", shape...)
					return G.Must(ChanDot(x, y, axis)), []*G.Node{x, y}
				}},
				{"ChanDotSelf", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) { // x.x: both inputs one node
					x := lmInput(g, rng, "x", shape...)
					return G.Must(ChanDot(x, x, axis)), []*G.Node{x}
				}},
				{"ChanBcast", func(g *G.ExprGraph, rng *rand.Rand) (*G.Node, []*G.Node) {
					v := lmInput(g, rng, "v", C)
					return G.Must(G.ApplyOp(newChanBcast(axis, shape), v)), []*G.Node{v}
				}},
			} {
				name := fmt.Sprintf("%s/%v/axis%d", tc.name, shape, axis)
				t.Run(name, func(t *testing.T) {
					g := G.NewGraph()
					out, wrt := tc.build(g, rand.New(rand.NewPCG(uint64(axis), uint64(shape.TotalSize()))))
					gradCheckNodes(t, name, g, out, wrt...)
				})
			}
		}
	}
}

// TestRotatingMergeHeadsGradient checks mergeHeadsOp with RoPE (the gradient of a rotating
// SplitHeads, which MergeHeads never builds) and that it inverts the rotating split.
func TestRotatingMergeHeadsGradient(t *testing.T) {
	const B, T, H, hd, base = 2, 3, 2, 4, 10.0
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(8, 8))
	x := lmInput(g, rng, "x", B*H, T, hd)
	y := G.Must(G.ApplyOp(&mergeHeadsOp{headsLayout: newHeadsLayout(B, T, H, hd, base)}, x))
	back := G.Must(SplitHeads(y, B, T, H, base))
	gradCheckNodes(t, "rotating-merge", g, y, x)
	for i, v := range f64(back) {
		if math.Abs(v-f64(x)[i]) > 1e-12 {
			t.Fatalf("split(merge(x))[%d] = %v, x = %v", i, v, f64(x)[i])
		}
	}
}

// naiveAvgPool is average pooling of NCHW x by k x k windows with stride s, written directly.
func naiveAvgPool(x []float64, shape tensor.Shape, k, s int) []float64 {
	N, C, H, W := shape[0], shape[1], shape[2], shape[3]
	OH, OW := (H-k)/s+1, (W-k)/s+1
	y := make([]float64, 0, N*C*OH*OW)
	for p := 0; p < N*C; p++ {
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				sum := 0.0
				for dy := 0; dy < k; dy++ {
					for dx := 0; dx < k; dx++ {
						sum += x[p*H*W+(oy*s+dy)*W+ox*s+dx]
					}
				}
				y = append(y, sum/float64(k*k))
			}
		}
	}
	return y
}

func TestAvgPoolForwardAndGradient(t *testing.T) {
	for _, tc := range []struct {
		shape tensor.Shape
		k, s  int
	}{
		{tensor.Shape{1, 1, 4, 4}, 2, 2},
		{tensor.Shape{2, 2, 5, 4}, 2, 1},
		{tensor.Shape{1, 2, 7, 6}, 3, 2},
		{tensor.Shape{2, 1, 3, 3}, 3, 1},
	} {
		name := fmt.Sprintf("%v/k%d/s%d", tc.shape, tc.k, tc.s)
		g := G.NewGraph()
		x := lmInput(g, rand.New(rand.NewPCG(uint64(tc.k), uint64(tc.s))), "x", tc.shape...)
		y, err := avgPool2D(x, tc.k, tc.s)
		if err != nil {
			t.Fatal(err)
		}
		gradCheckNodes(t, name, g, y, x)
		want := naiveAvgPool(f64(x), tc.shape, tc.k, tc.s)
		got := f64(y)
		if len(got) != len(want) {
			t.Fatalf("%s: %d outputs, want %d", name, len(got), len(want))
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Fatalf("%s: y[%d] = %v, want %v", name, i, got[i], want[i])
			}
		}
	}
}

// TestOpsReuseOutput checks that every custom op writes into the same output tensor from one
// run to the next (internal/opbuf) instead of allocating it.
func TestOpsReuseOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	dense := func(shape ...int) *tensor.Dense {
		d := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(shape...))
		fill(d, rng)
		return d
	}
	ids := tensor.New(tensor.WithShape(4), tensor.WithBacking([]float64{1, 0, 2, 1}))
	full, vec := tensor.Shape{2, 3, 4}, tensor.Shape{3}
	for _, tc := range []struct {
		op kernelOp
		in []*tensor.Dense
	}{
		{newChanAffine(1, full), []*tensor.Dense{dense(full...), dense(vec...), dense(vec...)}},
		{newChanScale(1, full), []*tensor.Dense{dense(full...), dense(vec...)}},
		{newChanShift(1, full), []*tensor.Dense{dense(full...), dense(vec...)}},
		{newChanSum(1, full), []*tensor.Dense{dense(full...)}},
		{newChanDot(1, full), []*tensor.Dense{dense(full...), dense(full...)}},
		{newChanBcast(1, full), []*tensor.Dense{dense(vec...)}},
		{newEmbeddingOp(3, 2, 4), []*tensor.Dense{dense(3, 2), ids}},
		{newEmbeddingGradOp(3, 2, 4), []*tensor.Dense{dense(4, 2), ids}},
		{&splitHeadsOp{headsLayout: newHeadsLayout(2, 3, 2, 4, 10)}, []*tensor.Dense{dense(6, 8)}},
		{&mergeHeadsOp{headsLayout: newHeadsLayout(2, 3, 2, 4, 0)}, []*tensor.Dense{dense(4, 3, 4)}},
		{newCausalSoftmaxOp(2, 3, 0.5), []*tensor.Dense{dense(2, 3, 3)}},
		{newCausalSoftmaxGradOp(2, 3, 0.5), []*tensor.Dense{dense(2, 3, 3), dense(2, 3, 3)}},
		{&avgPoolOp{avgPoolLayout: newAvgPoolLayout(2, 2, tensor.Shape{1, 2, 4, 4})}, []*tensor.Dense{dense(1, 2, 4, 4)}},
		{&avgPoolGradOp{avgPoolLayout: newAvgPoolLayout(2, 2, tensor.Shape{1, 2, 4, 4})}, []*tensor.Dense{dense(1, 2, 2, 2)}},
	} {
		vals := make([]G.Value, len(tc.in))
		for i, d := range tc.in {
			vals[i] = d
		}
		do := tc.op.(G.Op).Do
		first, err := do(vals...)
		if err != nil {
			t.Fatalf("%v: %v", tc.op, err)
		}
		want := append([]float64(nil), first.Data().([]float64)...)
		second, err := do(vals...)
		if err != nil {
			t.Fatalf("%v: %v", tc.op, err)
		}
		if first.(*tensor.Dense) != second.(*tensor.Dense) {
			t.Errorf("%v: second run returned a new output tensor", tc.op)
		}
		for i, v := range second.Data().([]float64) {
			if v != want[i] {
				t.Fatalf("%v: rerun changed output %d: %v, was %v", tc.op, i, v, want[i])
			}
		}
		// A prealloc that fits is written into; one of another shape is refused (the tape
		// machine then calls Do).
		s, _ := tc.op.(G.Op).InferShape()
		pre := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(s...))
		if got, err := tc.op.UsePreallocDo(pre, vals...); err != nil || got.(*tensor.Dense) != pre {
			t.Errorf("%v: fitting prealloc not used (err %v)", tc.op, err)
		}
		bad := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(s.TotalSize()+1))
		if _, err := tc.op.UsePreallocDo(bad, vals...); err == nil {
			t.Errorf("%v: prealloc of shape %v accepted for output %v", tc.op, bad.Shape(), s)
		}
	}
}
