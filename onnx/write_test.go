package onnx

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/qat"
	"gorgonia.org/tensor"
)

// everyLayer uses every layer kind FromModel writes: grouped and depthwise conv, BN, ReLU6,
// residual add, both pools, global pool, dropout, linear.
func everyLayer(seed uint64) *graph.Model {
	m := graph.NewModel("every-layer", []int{3, 12, 12}, tensor.Float32, seed)
	m.Conv2d("stem", graph.Conv{Out: 8, Kernel: 3, Pad: 1, Bias: true})
	m.BatchNorm("stem_bn", 1e-3, 0.1)
	m.ReLU6("stem_act")
	m.Conv2d("dw", graph.Conv{Out: 8, Kernel: 3, Pad: 1, Groups: 8})
	m.ReLU("dw_act")
	m.Conv2d("grouped", graph.Conv{Out: 8, Kernel: 1, Groups: 2, Bias: true})
	m.Add("res", "stem_act", "grouped")
	m.MaxPool2d("mp", 3, 2, 1)
	m.AvgPool2d("ap", 2, 1)
	m.Conv2d("wide", graph.Conv{Out: 16, Kernel: 3, Stride: 2})
	m.GlobalAvgPool("gap")
	m.Dropout("drop", 0.3)
	m.Linear("fc", 5, true)
	return m
}

// TestFromModelMatchesOnnxruntime writes float models and checks that onnxruntime computes the
// same outputs as the library's own float graph on random inputs.
func TestFromModelMatchesOnnxruntime(t *testing.T) {
	rt := findORT(t)
	for _, tc := range []struct {
		name string
		m    *graph.Model
	}{
		{"ggml-cnn", qat.GGMLCNN(1)},
		{"bn-cnn", qat.BNCNN(2)},
		{"every-layer", everyLayer(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			randomize(tc.m, rng)
			const n = 3
			x := randomInput(rng, n*tensor.Shape(tc.m.Input).TotalSize())
			want := floatForward(t, tc.m, x, n)
			mp, err := FromModel(tc.m, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), tc.name+".onnx")
			if err := WriteFile(path, mp); err != nil {
				t.Fatal(err)
			}
			res, err := rt.Run(path, ort.Input{Data: x, Dims: append([]int{n}, tc.m.Input...)}, ort.Options{})
			if err != nil {
				t.Fatal(err)
			}
			closeRel(t, "onnxruntime vs graph", res.Float32, want, 1e-4)
		})
	}
}
