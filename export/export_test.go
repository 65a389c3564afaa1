package export

import (
	"io"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// synth is a synthetic 10-class image set: class k has a bright blob at a class-dependent place
// plus noise, so a small CNN learns it in a few steps.
type synth struct {
	c, h, w int
	x       []float32
	y       []int
}

func newSynth(n, c, h, w int, seed uint64) *synth {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := &synth{c: c, h: h, w: w, x: make([]float32, n*c*h*w), y: make([]int, n)}
	per := c * h * w
	for i := 0; i < n; i++ {
		k := rng.IntN(10)
		s.y[i] = k
		cy, cx := 1+(k/5)*(h/2), 1+(k%5)*(w-2)/5
		for ch := 0; ch < c; ch++ {
			for yy := 0; yy < h; yy++ {
				for xx := 0; xx < w; xx++ {
					v := 0.2 * rng.Float32()
					if yy >= cy && yy < cy+h/3 && xx >= cx && xx < cx+2 {
						v += 0.8
					}
					s.x[i*per+(ch*h+yy)*w+xx] = v
				}
			}
		}
	}
	return s
}

func (s *synth) Len() int { return len(s.y) }

func (s *synth) Batch(idx []int, x []float32, y []int) {
	per := s.c * s.h * s.w
	for b, i := range idx {
		copy(x[b*per:(b+1)*per], s.x[i*per:(i+1)*per])
		y[b] = s.y[i]
	}
}

// smallCNN has every lowered construct: conv+BN+ReLU, depthwise conv+BN+ReLU6, max and average
// pooling, a residual Add+ReLU, flatten of a (C,H,W) tensor into a linear layer, dropout.
func smallCNN(seed uint64) *graph.Model {
	m := graph.NewModel("small", []int{2, 12, 12}, tensor.Float32, seed)
	m.Conv2d("conv1", graph.Conv{Out: 8, Kernel: 3, Pad: 1})
	m.BatchNorm("bn1", 0, 0)
	m.ReLU("relu1")
	m.MaxPool2d("pool1", 2, 2, 0)
	m.Conv2d("dw", graph.Conv{Out: 8, Kernel: 3, Pad: 1, Groups: 8, Bias: true})
	m.BatchNorm("bn2", 0, 0)
	m.ReLU6("relu2")
	m.Conv2d("pw", graph.Conv{Out: 8, Kernel: 1, Bias: true})
	m.Add("res", "pool1", "pw")
	m.ReLU("relu3")
	m.AvgPool2d("apool", 2, 2)
	m.Conv2d("conv3", graph.Conv{Out: 6, Kernel: 3, Stride: 2, Pad: 1, Bias: true})
	m.ReLU("relu4")
	m.Flatten("flat")
	m.Dropout("drop", 0.1)
	m.Linear("fc", 10, true)
	return m
}

// trained returns a model trained a few QAT steps on synthetic data with config c.
func trained(t testing.TB, mk func(uint64) *graph.Model, c qat.QConfig, steps int) (*qat.Prepared, *synth) {
	t.Helper()
	m := mk(1)
	p, err := qat.Prepare(m, c)
	if err != nil {
		t.Fatal(err)
	}
	data := newSynth(steps*16, m.Input[0], m.Input[1], m.Input[2], 3)
	tr, err := qat.NewTrainer(m, p, qat.Config{Epochs: 1, BatchSize: 16, EvalBatch: 64, Seed: 2, Logger: quiet(), CalibBatches: 2, LR: 3e-3})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	test := newSynth(64, m.Input[0], m.Input[1], m.Input[2], 4)
	if err := tr.Fit(data, test); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Evaluate(test); err != nil { // syncs the observer state into p
		t.Fatal(err)
	}
	return p, test
}

func TestSmoke(t *testing.T) {
	p, test := trained(t, smallCNN, qat.W8A8(), 20)
	qm, err := Lower(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Parity(p, qm, test.x, test.Len())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
}
