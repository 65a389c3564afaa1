package fastblas_test

import (
	"fmt"

	"github.com/qatgo/qatgo/fastblas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ExampleInstall() {
	restore := fastblas.Install()
	defer restore()

	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))))
	w := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 2), G.WithName("w"),
		G.WithValue(tensor.New(tensor.WithShape(3, 2), tensor.WithBacking([]float32{7, 8, 9, 10, 11, 12}))))
	y := G.Must(G.Mul(x, w))
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(y.Value().Data())
	// Output: [58 64 139 154]
}
