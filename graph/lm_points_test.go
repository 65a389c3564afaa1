package graph

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestLMPointsIdentity: with an identity Points function the graph calls it once at every
// LMPoint with the kind LMPoints lists (the KV cache as [Batch, Heads, Ctx*HeadDim]) and computes
// the same loss as without points; a hook that scales the KV cache changes it.
func TestLMPointsIdentity(t *testing.T) {
	lm, err := NewLM("p", LMConfig{Vocab: 7, Dim: 8, Layers: 2, Heads: 2, Hidden: 16, Ctx: 4}, tensor.Float64, 5)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 2, 3, 4, 5, 6, 0, 1}
	tg := []int{2, 3, 4, 5, 6, 0, 1, 2}
	loss := func(o LMOptions) float64 {
		o.Batch = 2
		n, err := lm.Build(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.SetBatch(ids, tg); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(n.G)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return n.Loss.Value().Data().(float64)
	}
	want := loss(LMOptions{})
	seen := map[string]LMPointKind{}
	got := loss(LMOptions{Points: func(pt LMPoint, x *G.Node) (*G.Node, error) {
		if _, dup := seen[pt.Name]; dup {
			t.Errorf("point %s twice", pt.Name)
		}
		seen[pt.Name] = pt.Kind
		if pt.Kind == PointKVCache && !x.Shape().Eq(tensor.Shape{2, 2, 4 * 4}) {
			t.Errorf("%s: shape %v", pt.Name, x.Shape())
		}
		return x, nil
	}})
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("loss with identity points %v, without %v", got, want)
	}
	pts := lm.LMPoints()
	if len(seen) != len(pts) || len(pts) != 1+2*13 {
		t.Errorf("%d points seen, %d listed", len(seen), len(pts))
	}
	for _, p := range pts {
		if k, ok := seen[p.Name]; !ok || k != p.Kind {
			t.Errorf("point %+v: seen %v %v", p, ok, k)
		}
	}
	scaled := loss(LMOptions{Points: func(pt LMPoint, x *G.Node) (*G.Node, error) {
		if pt.Name == "blk1.attn.v_cache" {
			return G.Mul(x, G.NewConstant(2.0))
		}
		return x, nil
	}})
	if math.Abs(scaled-want) < 1e-9 {
		t.Error("scaling the value cache did not change the loss")
	}
}
