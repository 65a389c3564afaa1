package graph

import (
	"math"
	"reflect"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestLMRuntimeOps: with Points and a Runtime function the graph hands every runtime op to it
// once, in the runtime's op order, with ref's shape and the op's inputs; substitutes that copy ref
// leave the loss and the gradients unchanged, and a substitute that doubles one op's value
// changes the loss and passes the gradient at its value to ref (straight through).
func TestLMRuntimeOps(t *testing.T) {
	for _, hadamard := range []bool{false, true} {
		lm, err := NewLM("r", LMConfig{Vocab: 7, Dim: 8, Layers: 2, Heads: 2, Hidden: 16, Ctx: 4, OnlineHadamard: hadamard}, tensor.Float64, 5)
		if err != nil {
			t.Fatal(err)
		}
		ids := []int{1, 2, 3, 4, 5, 6, 0, 1}
		tg := []int{2, 3, 4, 5, 6, 0, 1, 2}
		ident := func(pt LMPoint, x *G.Node) (*G.Node, error) { return x, nil }
		// run returns the loss and the gradient of the first block's wq.
		run := func(o LMOptions) (float64, []float64) {
			o.Batch = 2
			n, err := lm.Build(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.SetBatch(ids, tg); err != nil {
				t.Fatal(err)
			}
			if _, err := G.Grad(n.Loss, n.ParamNodes()...); err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(n.G)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			g, err := n.Params["blk0.attn.wq.weight"].Grad()
			if err != nil {
				t.Fatal(err)
			}
			return n.Loss.Value().Data().(float64), append([]float64(nil), g.Data().([]float64)...)
		}
		wantLoss, wantGrad := run(LMOptions{Points: ident})
		var order []string
		arity := map[string]int{}
		copyRef := func(out, ref []float64, in [][]float64, shapes []tensor.Shape) error {
			copy(out, ref)
			return nil
		}
		gotLoss, gotGrad := run(LMOptions{Points: ident, Runtime: func(op string, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
			order = append(order, op)
			arity[op] = len(inputs)
			return RuntimeSubstitute(op, copyRef, ref, inputs...)
		}})
		if math.Abs(gotLoss-wantLoss) > 1e-12 || !reflect.DeepEqual(gotGrad, wantGrad) {
			t.Errorf("hadamard %v: copying substitutes change loss %v -> %v or the gradient", hadamard, wantLoss, gotLoss)
		}
		want := []string{"tok_emb"}
		for _, b := range []string{"blk0.", "blk1."} {
			want = append(want, b+"attn_norm", b+"attn.wq", b+"attn.wk", b+"attn.wv", b+"attn.rope_q", b+"attn.rope_k", b+"attn",
				b+"attn.wo", b+"attn.res", b+"mlp_norm", b+"mlp.w1", b+"mlp.w3", b+"mlp.swiglu")
			if hadamard {
				want = append(want, b+"mlp.hadamard")
			}
			want = append(want, b+"mlp.w2", b+"mlp.res")
		}
		want = append(want, "norm", "head")
		if !reflect.DeepEqual(order, want) {
			t.Errorf("hadamard %v: runtime ops\n%v\nwant\n%v", hadamard, order, want)
		}
		if arity["blk0.attn"] != 3 || arity["blk1.mlp.res"] != 2 || arity["blk0.mlp.swiglu"] != 2 || arity["norm"] != 1 || arity["tok_emb"] != 1 {
			t.Errorf("inputs per op %v", arity)
		}
		doubled, dGrad := run(LMOptions{Points: ident, Runtime: func(op string, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
			if op != "head" {
				return ref, nil
			}
			return RuntimeSubstitute(op, func(out, ref []float64, in [][]float64, shapes []tensor.Shape) error {
				if !shapes[0].Eq(tensor.Shape{8, 7}) || !shapes[1].Eq(tensor.Shape{8, 8}) {
					t.Errorf("head shapes %v", shapes)
				}
				for i, v := range ref {
					out[i] = 2 * v
				}
				return nil
			}, ref, inputs...)
		}})
		if math.Abs(doubled-wantLoss) < 1e-9 {
			t.Error("doubling the logits did not change the loss")
		}
		// The gradient reaches wq through ref, evaluated at the substituted logits.
		if len(dGrad) != len(wantGrad) || reflect.DeepEqual(dGrad, wantGrad) {
			t.Error("the gradient does not flow through the substitute's reference")
		}
	}
}
