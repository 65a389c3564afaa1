package infer

import (
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// withCacheRange returns a copy of m whose Attention ops hold the optional cache range (k, v).
func withCacheRange(t *testing.T, m *qmodel.Model, k, v int32) *qmodel.Model {
	t.Helper()
	n := *m
	n.Tensors = append([]qmodel.Tensor(nil), m.Tensors...)
	n.Ops = append([]qmodel.Op(nil), m.Ops...)
	for i := range n.Ops {
		op := &n.Ops[i]
		if op.Kind != qmodel.OpAttention {
			continue
		}
		n.Tensors = append(n.Tensors, qmodel.Tensor{Name: op.Name + "/cache_max", DType: qmodel.Int32, Shape: []int{2},
			Quant: qmodel.PerTensor(1, 0), Data: qmodel.Int32Data([]int32{k, v})})
		op.Inputs = append(append([]int(nil), op.Inputs...), len(n.Tensors)-1)
	}
	return &n
}

// TestAttentionCacheRange: an Attention op with a cache range (K 7, V 5) stores exactly the
// levels the int8 cache stores without it, clamped to [-7, 7] and [-5, 5] (checked on the first
// block's cache, whose inputs are the same in both models); the model also survives an
// encode/decode round trip, and bounds outside [1, 127] are rejected.
func TestAttentionCacheRange(t *testing.T) {
	m, err := lmref.RandomLM(lmref.Tiny(8, 0), 1)
	if err != nil {
		t.Fatal(err)
	}
	narrow := withCacheRange(t, m, 7, 5)
	b, err := qmodel.Encode(narrow)
	if err != nil {
		t.Fatal(err)
	}
	if narrow, err = qmodel.Decode(b); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]int32{{0, 7}, {7, 128}, {-3, 7}} {
		if err := withCacheRange(t, m, bad[0], bad[1]).Validate(); err == nil {
			t.Errorf("cache range %v accepted", bad)
		}
	}
	wide, err := LoadLM(m)
	if err != nil {
		t.Fatal(err)
	}
	nl, err := LoadLM(narrow)
	if err != nil {
		t.Fatal(err)
	}
	ws, ns := wide.NewSession(), nl.NewSession()
	prompt := []int{'f', 'u', 'n', 'c', ' ', 'm', 'a', 'i', 'n', '(', ')', ' ', '{'}
	if _, err := ws.Prefill(prompt); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Prefill(prompt); err != nil {
		t.Fatal(err)
	}
	var clipped, inside int
	for j, c := range [][2][]int8{{ws.kc[0], ns.kc[0]}, {ws.vc[0], ns.vc[0]}} {
		lim := int32([]int32{7, 5}[j])
		for i, w := range c[0] {
			want := int8(quant.Clamp(int32(w), -lim, lim))
			if c[1][i] != want {
				t.Fatalf("cache %d element %d: %d, want %d clamped to %d: %d", j, i, c[1][i], w, lim, want)
			}
			if want != w {
				clipped++
			} else if w != 0 {
				inside++
			}
		}
	}
	if clipped == 0 || inside == 0 {
		t.Errorf("%d cache values clipped, %d kept (non-zero): the test needs both", clipped, inside)
	}
}
