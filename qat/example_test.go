package qat_test

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
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

// halves is a toy labelled set: 2 features in [-1, 1), class 1 when their sum is positive.
type halves struct{ n int }

func (h halves) Len() int { return h.n }
func (h halves) Batch(idx []int, x []float32, y []int) {
	for k, i := range idx {
		r := rand.New(rand.NewPCG(uint64(i), 3))
		a, b := 2*r.Float32()-1, 2*r.Float32()-1
		x[2*k], x[2*k+1] = a, b
		y[k] = 0
		if a+b > 0 {
			y[k] = 1
		}
	}
}

// A user-supplied loss: the Brier score, mean over rows of sum_k (softmax(out)_k - target_k)^2,
// trains a linear classifier through the same Trainer as the built-in losses.
func ExampleLoss() {
	brier := func(out, target *G.Node) (*G.Node, error) {
		p, err := G.Exp(G.Must(G.LogSoftMax(out))) // softmax (see Loss)
		if err != nil {
			return nil, err
		}
		sq, err := G.Square(G.Must(G.Sub(p, target)))
		if err != nil {
			return nil, err
		}
		return G.HadamardProd(G.Must(G.Sum(sq)), G.NewConstant(float32(1.0/float64(out.Shape()[0]))))
	}
	m := graph.NewModel("linear", []int{2}, tensor.Float32, 1)
	m.Linear("fc", 2, true)
	log := logrus.New()
	log.SetOutput(io.Discard)
	tr, err := qat.NewTrainer(qat.Classify(m, halves{512}), nil,
		qat.Config{Epochs: 5, BatchSize: 32, LR: 0.05, Loss: brier, Logger: log})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	before, _ := tr.Evaluate(qat.Images{Data: halves{256}})
	if err := tr.Fit(nil); err != nil {
		fmt.Println(err)
		return
	}
	after, _ := tr.Evaluate(qat.Images{Data: halves{256}})
	fmt.Printf("Brier loss lower: %v, accuracy above 95%%: %v\n", after.Loss < before.Loss, after.Acc > 0.95)
	// Output: Brier loss lower: true, accuracy above 95%: true
}
