package graph_test

import (
	"fmt"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Build a Conv-BN-ReLU-Pool-Linear model, inspect the spec export walks, and run a batch.
func ExampleModel() {
	m := graph.NewModel("cnn", []int{1, 28, 28}, tensor.Float32, 1)
	m.Conv2d("conv", graph.Conv{Out: 8, Kernel: 3, Pad: 1})
	m.BatchNorm("bn", 0, 0)
	m.ReLU("relu")
	m.MaxPool2d("pool", 2, 0, 0)
	m.Flatten("flat")
	m.Linear("fc", 10, true)
	for _, g := range m.Groups() {
		fmt.Println(g.Op, g.Layers)
	}
	n, err := m.Build(graph.Options{Batch: 4})
	if err != nil {
		fmt.Println(err)
		return
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n.Out.Shape())
	// Output:
	// conv [conv bn relu]
	// pool [pool]
	// flat [flat]
	// fc [fc]
	// (4, 10)
}
