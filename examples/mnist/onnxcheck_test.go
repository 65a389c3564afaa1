package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/onnx/testnets"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// TestORTCheck runs the -onnx path on the depthwise-separable CNN (random weights) and random
// images, in three onnxruntime chunks (the last one partial), against the real onnxruntime. Under requant
// onnxruntime the .qm computes what onnxruntime's int8 kernels compute (TestQDQMatchesIntegerRuntime
// in package onnx), so the table must show 100% agreement and 0 LSB at W8A8 and W4A4; a
// comparison of misaligned images or outputs, or a wrong LSB, would break that. Under the default
// rule the differences stay within the 1-2 LSB that package onnx measures.
func TestORTCheck(t *testing.T) {
	if _, err := ort.Find(); err != nil {
		t.Skipf("onnxruntime not available: %v", err)
	}
	defer func(n int) { ortChunk = n }(ortChunk)
	ortChunk = 64
	r := rand.New(rand.NewPCG(3, 4))
	set := func(n int) *mnist.Set {
		s := &mnist.Set{Rows: 28, Cols: 28, Pixels: make([]byte, n*784), Labels: make([]uint8, n)}
		for i := range s.Pixels {
			if i/784%3 != 0 { // every third image blank: outputs differ from image to image
				s.Pixels[i] = uint8(r.IntN(256))
			}
		}
		for i := range s.Labels {
			s.Labels[i] = uint8(r.IntN(10))
		}
		return s
	}
	train, test := set(128), set(2*ortChunk+40)
	for _, requant := range []string{qmodel.RequantOnnxruntime} {
		m, _, err := onnx.Import(testnets.DSNet(1, false), "dsnet")
		if err != nil {
			t.Fatal(err)
		}
		o := options{out: t.TempDir(), requant: requant}
		c, err := newORTCheck(o, m, test)
		if err != nil {
			t.Fatal(err)
		}
		acc, _, err := qat.Evaluate(m, nil, test, 500)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.float(m, acc); err != nil {
			t.Fatal(err)
		}
		for _, b := range []int{8, 4} {
			cfg := qat.W8A8()
			if b == 4 {
				cfg = qat.QConfig{Name: "W4A4", Weight: qat.Spec{Bits: 4}, Act: qat.Spec{Bits: 4}}
			}
			p, err := qat.Calibrate(m, cfg, train, 2, 64, 1)
			if err != nil {
				t.Fatal(err)
			}
			fake, _, err := qat.Evaluate(m, p, test, 500)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.quantized(p, cfg.Name, cfg.Name, "PTQ", fake); err != nil {
				t.Fatalf("%s %s: %v", requant, cfg.Name, err)
			}
		}
		t.Log(c.table("dsnet"))
		n := float64(test.Len())
		if f := c.rows[0]; math.Abs(f.ort-f.fake) > 2/n {
			t.Errorf("%s: float accuracy in onnxruntime %.4f, in qatgo %.4f", requant, f.ort, f.fake)
		}
		for _, row := range c.rows[1:] {
			if row.agree != 1 || row.maxLSB != 0 || row.qm != row.ort {
				t.Errorf("%s %s: agreement %.4f, max %.3g LSB, accuracy %.4f vs %.4f; want identical outputs", requant, row.bits, row.agree, row.maxLSB, row.qm, row.ort)
			}
		}
	}
}
