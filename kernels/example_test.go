package kernels_test

import (
	"fmt"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/quant"
)

// A 2x3 activation matrix times a 2x3 weight matrix, requantized to int8 with a per-tensor
// multiplier of 0.25, an input zero point of 1 folded into the bias, and ReLU fused in the clamp.
func Example() {
	w, err := kernels.PackInt8([]int8{1, 2, 3, -1, -2, -3}, 2, 3)
	if err != nil {
		panic(err)
	}
	const inZero = 1
	bias := []int32{4, 4}
	for j, s := range w.RowSums() {
		bias[j] -= inZero * s // bias' = bias - zIn*RowSums
	}
	m, _ := quant.QuantizeMultiplier(0.25)
	rq := &kernels.Requant{
		M0: []int32{m.M0, m.M0}, Shift: []int32{m.Shift, m.Shift},
		ZeroPoint: -128, Min: -128, Max: 127, // output zero point -128: ReLU is the clamp at -128
	}
	a := []int8{11, 21, 31, 1, 1, 1} // real values (a - 1): [10 20 30] and [0 0 0]
	dst := make([]int8, 4)
	kernels.GEMMInt8(dst, 2, a, 3, 2, w, bias, rq)
	fmt.Println(dst)
	// Output: [-92 -128 -127 -127]
}

// W4A8: int4 weights with an integer scale per group of 8 values along K, one activation row.
func ExampleGEMMInt4() {
	const n, k, group = 2, 16, 8
	w := make([]int8, n*k) // each in [-7, 7]
	for i := range w {
		w[i] = int8(i%15 - 7)
	}
	scales := []int32{1, 2, 3, 4} // [row][group]
	p, err := kernels.PackInt4(w, n, k, group, scales)
	if err != nil {
		panic(err)
	}
	a := make([]int8, k)
	for i := range a {
		a[i] = 1
	}
	acc := make([]int32, n)
	kernels.GEMMInt4Int32(acc, n, a, k, 1, p, nil)
	// row 0: 1*sum(-7..0) + 2*sum(1..7,-7) = -28 + 2*21 = 14
	// row 1: 3*sum(-6..1) + 4*sum(2..7,-7,-6) = 3*(-20) + 4*14 = -4
	fmt.Println(acc)
	// Output: [14 -4]
}

// A 3x3 single-channel image convolved with a 2x2 kernel of ones (stride 1, no padding),
// input zero point 0, output multiplier 1 (M0 = 2^30, Shift = 1).
func ExampleConv2DInt8() {
	s := kernels.ConvShape{InH: 3, InW: 3, InC: 1, OutC: 1, KH: 2, KW: 2, StrideH: 1, StrideW: 1}
	w, err := kernels.PackInt8([]int8{1, 1, 1, 1}, 1, s.K())
	if err != nil {
		panic(err)
	}
	rq := &kernels.Requant{M0: []int32{1 << 30}, Shift: []int32{1}, Min: -128, Max: 127}
	src := []int8{1, 2, 3, 4, 5, 6, 7, 8, 9}
	dst := make([]int8, s.OutH()*s.OutW())
	scratch := make([]int8, kernels.Conv2DScratchLen(s)) // reusable across calls
	kernels.Conv2DInt8(dst, src, 1, s, 0, w, nil, rq, scratch)
	fmt.Println(dst)
	// Output: [12 16 24 28]
}

// A 3x3 convolution with ReLU and a 2x2 max pool in one pass: a 4x4 one-channel image, two
// output channels (an edge detector and a box filter), multiplier 1/8.
func ExampleFusedConv() {
	s := kernels.ConvShape{InH: 4, InW: 4, InC: 1, OutC: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1,
		PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	w, err := kernels.PackInt8([]int8{
		-1, 0, 1, -1, 0, 1, -1, 0, 1, // horizontal gradient
		1, 1, 1, 1, 1, 1, 1, 1, 1, // box
	}, 2, 9)
	if err != nil {
		panic(err)
	}
	m, _ := quant.QuantizeMultiplier(0.125)
	rq := &kernels.Requant{M0: []int32{m.M0, m.M0}, Shift: []int32{m.Shift, m.Shift}, ZeroPoint: 0, Min: 0, Max: 127} // ReLU
	f, err := kernels.NewFusedConv(s, true, 0, w, nil, rq)
	if err != nil {
		panic(err)
	}
	img := []int8{
		0, 0, 40, 40,
		0, 0, 40, 40,
		0, 0, 40, 40,
		0, 0, 40, 40,
	}
	dst := make([]int8, f.OutH()*f.OutW()*2)
	var sc kernels.FusedScratch
	f.Run(dst, img, 1, &sc)
	fmt.Println(f.OutH(), f.OutW(), dst)
	// Output: 2 2 [15 15 15 30 15 15 15 30]
}
