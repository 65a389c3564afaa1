package fakequant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestWalshHadamard compares the transform with the written-out H_4 / 2 and checks its gradient.
func TestWalshHadamard(t *testing.T) {
	h4 := []float64{1, 1, 1, 1, 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1}
	x := []float64{0.5, -2, 3, 1, 4, 0, -1, 2} // two rows
	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 4), G.WithName("x"), G.WithValue(denseFrom(tensor.Float64, []int{2, 4}, x)))
	y, err := WalshHadamard(xn)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	vm.Close()
	got := valueFloats(y.Value())
	for r := 0; r < 2; r++ {
		for j := 0; j < 4; j++ {
			var want float64
			for i := 0; i < 4; i++ {
				want += x[r*4+i] * h4[i*4+j] / 2
			}
			if math.Abs(got[r*4+j]-want) > 1e-14 {
				t.Fatalf("row %d col %d: %v, want %v", r, j, got[r*4+j], want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	g = G.NewGraph()
	xn = G.NewMatrix(g, tensor.Float64, G.WithShape(2, 4), G.WithName("x"), G.WithValue(denseFrom(tensor.Float64, []int{2, 4}, x)))
	y, err = WalshHadamard(xn)
	if err != nil {
		t.Fatal(err)
	}
	if err := gradcheck.Graph(g, y, []*G.Node{xn}, gradcheck.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := WalshHadamard(G.NewMatrix(G.NewGraph(), tensor.Float64, G.WithShape(2, 6), G.WithName("x"))); err == nil {
		t.Fatal("width 6: no error")
	}
	if _, err := RandomHadamardMatrix(6, 1); err == nil {
		t.Fatal("RandomHadamardMatrix(6): no error")
	}
}
