package infer_test

import (
	"fmt"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// Build a tiny integer model, load it and classify two samples in one batch.
func Example() {
	b := qmodel.NewBuilder("sign")
	b.SetLabels([]string{"negative", "positive"})
	x := b.Input("x", qmodel.Float32, []int{1}, nil)
	q := b.Quantize("quantize", x, quant.Params{Scale: 0.01, ZeroPoint: 0})
	y := b.FullyConnected("fc", q, qmodel.Weights{Values: []int8{-127, 127}, Shape: []int{2, 1}, Scales: []float32{1.0 / 127}},
		nil, qmodel.ActReLU, quant.Params{Scale: 0.01, ZeroPoint: -128})
	b.Output(b.Dequantize("scores", y))
	m, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	md, err := infer.Load(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := md.NewSession() // one per goroutine; md itself is shared
	out, err := s.Run([]float32{-0.5, 0.75}, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 2; i++ {
		scores := out[2*i : 2*i+2]
		fmt.Printf("%v -> %s\n", scores, md.Labels()[infer.Argmax(scores)])
	}
	// Output:
	// [0.5 0] -> negative
	// [0 0.75] -> positive
}
