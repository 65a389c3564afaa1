package convop_test

import (
	"fmt"

	"github.com/qatgo/qatgo/convop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ExampleConv2d() {
	g := G.NewGraph()
	// One 1-channel 3x3 image and one 2x2 kernel of ones: each output is the
	// sum of a 2x2 window.
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 3, 3), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 3, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9}))))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 2, 2), G.WithName("w"),
		G.WithValue(tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float32{1, 1, 1, 1}))))
	y, err := convop.Conv2d(x, w, []int{0, 0}, []int{1, 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(y.Shape(), y.Value().Data())
	// Output: (1, 1, 2, 2) [12 16 24 28]
}
