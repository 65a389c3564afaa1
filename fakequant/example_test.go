package fakequant

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ExampleHadamard rotates two rows by R = D H_4 / 2 (D random signs from the seed). Row e_0 becomes
// row 0 of R: the first sign times (1, 1, 1, 1)/2; norms are preserved.
func ExampleHadamard() {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 4), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking([]float64{1, 0, 0, 0, 3, 0, 4, 0}))))
	h, err := Hadamard(x, 1)
	if err != nil {
		panic(err)
	}
	if err := G.NewTapeMachine(g).RunAll(); err != nil {
		panic(err)
	}
	y := h.Out.Value().Data().([]float64)
	n0, n1 := 0.0, 0.0
	for i := 0; i < 4; i++ {
		n0 += y[i] * y[i]
		n1 += y[4+i] * y[4+i]
	}
	fmt.Printf("%.2f signs[0]=%v norms %.0f %.0f\n", y[:4], h.Signs[0], n0, n1)
	// Output:
	// [-0.50 -0.50 -0.50 -0.50] signs[0]=-1 norms 1 25
}
