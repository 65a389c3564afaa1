package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestStandaloneBNScaleMatchesExport checks that a standalone BatchNorm with running statistics
// computes its scale as gamma/sqrt(var+eps) in the float32 operations export lowers it with
// (export's bnScale), bit for bit: with mean 0, beta 0 and input 1 the output is the scale itself.
func TestStandaloneBNScaleMatchesExport(t *testing.T) {
	const c = 256
	m := NewModel("bn", []int{c}, tensor.Float32, 1)
	l := m.BatchNorm("bn", 0, 0)
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	gamma := m.LayerParam("bn", RoleGamma).Value.Data().([]float32)
	rv := m.LayerParam("bn", RoleRunningVar).Value.Data().([]float32)
	for i := range gamma {
		gamma[i] = float32(rng.NormFloat64())
		rv[i] = float32(0.01 + 3*rng.Float64())
	}
	n, err := m.Build(Options{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := 0, n.XVal.Data().([]float32); i < len(x); i++ {
		x[i] = 1
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	eps := float32(l.Eps)
	for i, got := range n.Out.Value().Data().([]float32) {
		want := gamma[i] / float32(math.Sqrt(float64(rv[i]+eps)))
		if got != want {
			t.Fatalf("channel %d: scale %v, want gamma/sqrt(var+eps) = %v", i, got, want)
		}
	}
}
