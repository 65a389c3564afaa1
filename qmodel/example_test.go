package qmodel_test

import (
	"fmt"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// Build a two-layer integer model, encode it and decode it again.
func Example() {
	b := qmodel.NewBuilder("xor-ish")
	b.SetProducer("example")
	b.SetLabels([]string{"no", "yes"})
	x := b.Input("x", qmodel.Float32, []int{2}, nil)
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 127, ZeroPoint: 0})
	h := b.FullyConnected("hidden", q, qmodel.Weights{
		Values: []int8{127, 127, -127, -127, 64, -64, -64, 64},
		Shape:  []int{4, 2},
		Scales: []float32{0.01, 0.01, 0.02, 0.02}, // per output channel
	}, []int32{0, 0, 10, 10}, qmodel.ActReLU, quant.Params{Scale: 0.02, ZeroPoint: -128})
	y := b.FullyConnected("out", h, qmodel.Weights{
		Values: []int8{1, 1, -1, -1, -1, -1, 1, 1},
		Shape:  []int{2, 4},
		Scales: []float32{0.5},
		Int4:   true, // stored two per byte
	}, nil, qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(b.Dequantize("logits", y))
	m, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	file, err := qmodel.Encode(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	back, err := qmodel.Decode(file)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, op := range back.Ops {
		out := back.Tensors[op.Outputs[0]]
		fmt.Printf("%-14s %-8s %v %v\n", op.Kind, op.Name, out.DType, out.Shape)
	}
	fmt.Println("constant bytes:", back.ConstBytes())
	// Output:
	// Quantize       quantize int8 [2]
	// FullyConnected hidden   int8 [4]
	// FullyConnected out      int8 [2]
	// Dequantize     logits   float32 [2]
	// constant bytes: 28
}
