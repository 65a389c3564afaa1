package qat_test

import (
	"fmt"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
)

// Prepare puts a fake-quantizer at every place the integer runtime quantizes.
func ExamplePrepare() {
	m := qat.GGMLCNN(1)
	p, err := qat.Prepare(m, qat.W4A4LSQ().FirstLast8(m))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range p.Sites {
		fmt.Println(s.Name, s.Kind)
	}
	_ = graph.InputName
	// Output:
	// input activation
	// conv1.weight weight
	// conv1.out activation
	// conv2.weight weight
	// conv2.out activation
	// fc.weight weight
	// fc.out activation
}
