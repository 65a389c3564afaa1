package qat

import (
	"fmt"
	"sort"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// GGMLCNN is the MNIST CNN of ggml's example, for like-for-like comparison: conv3x3 1->8 pad 1,
// ReLU, maxpool 2, conv3x3 8->16 pad 1, ReLU, maxpool 2, flatten, dense 784->10.
func GGMLCNN(seed uint64) *graph.Model {
	m := graph.NewModel("ggml-cnn", []int{1, 28, 28}, tensor.Float32, seed)
	m.Conv2d("conv1", graph.Conv{Out: 8, Kernel: 3, Pad: 1, Bias: true})
	m.ReLU("relu1")
	m.MaxPool2d("pool1", 2, 2, 0)
	m.Conv2d("conv2", graph.Conv{Out: 16, Kernel: 3, Pad: 1, Bias: true})
	m.ReLU("relu2")
	m.MaxPool2d("pool2", 2, 2, 0)
	m.Flatten("flatten")
	m.Linear("fc", 10, true)
	return m
}

// BNCNN is a stronger MNIST CNN with BatchNorm: three conv3x3-BN-ReLU blocks (16, 32, 64
// channels; max pooling after the first two), flatten, dense 3136->10. About 2M multiply-adds
// per image.
func BNCNN(seed uint64) *graph.Model {
	m := graph.NewModel("bn-cnn", []int{1, 28, 28}, tensor.Float32, seed)
	m.Conv2d("conv1", graph.Conv{Out: 16, Kernel: 3, Pad: 1})
	m.BatchNorm("bn1", 0, 0)
	m.ReLU("relu1")
	m.MaxPool2d("pool1", 2, 2, 0)
	m.Conv2d("conv2", graph.Conv{Out: 32, Kernel: 3, Pad: 1})
	m.BatchNorm("bn2", 0, 0)
	m.ReLU("relu2")
	m.MaxPool2d("pool2", 2, 2, 0)
	m.Conv2d("conv3", graph.Conv{Out: 64, Kernel: 3, Pad: 1})
	m.BatchNorm("bn3", 0, 0)
	m.ReLU("relu3")
	m.Flatten("flatten")
	m.Linear("fc", 10, true)
	return m
}

// models are the architectures of this package by graph.Model.Name.
var models = map[string]func(uint64) *graph.Model{
	"ggml-cnn": GGMLCNN,
	"bn-cnn":   BNCNN,
}

// ModelNames lists the architectures NewModel builds, sorted.
func ModelNames() []string {
	n := make([]string, 0, len(models))
	for k := range models {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// NewModel builds the architecture of this package whose graph.Model.Name is name (as recorded
// in checkpoints under MetaModel), initialised from seed.
func NewModel(name string, seed uint64) (*graph.Model, error) {
	mk, ok := models[name]
	if !ok {
		return nil, fmt.Errorf("qat: unknown model %q (known: %s)", name, strings.Join(ModelNames(), ", "))
	}
	return mk(seed), nil
}
