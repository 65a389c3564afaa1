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

// The same Trainer trains a transformer LM on next-token prediction: float first, then QAT from
// the float weights, continuing the data stream where float training stopped.
func ExampleNextTokenTask() {
	lm, err := graph.NewLM("tiny", graph.LMConfig{Vocab: 11, Dim: 16, Layers: 1, Heads: 2, Hidden: 32, Ctx: 8}, tensor.Float32, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	// a learnable stream: token j of batch step is 7(3 step + 5 b + j) mod 11
	stream := func(step int64) (ids, targets []int) {
		for b := 0; b < 4; b++ {
			for j := 0; j < 8; j++ {
				p := int(step)*3 + b*5 + j
				ids, targets = append(ids, (7*p)%11), append(targets, (7*(p+1))%11)
			}
		}
		return ids, targets
	}
	x, y := stream(1000)
	val := qat.Tokens{IDs: [][]int{x}, Targets: [][]int{y}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := qat.Config{Steps: 150, BatchSize: 4, LR: 1e-2, MinLR: 1e-3, Schedule: qat.WarmupCosineLR, Warmup: 10,
		Beta2: 0.95, ClipNorm: 1, WeightDecay: 0.05, Logger: log}
	ft, _ := qat.NewTrainer(&qat.NextTokenTask{LM: lm, Train: stream}, nil, cfg)
	defer ft.Close()
	if err := ft.Fit(nil); err != nil {
		fmt.Println(err)
		return
	}
	float, _ := ft.Evaluate(val)

	p, _ := qat.Prepare(lm, qat.LMRecipe{WBits: 4, ABits: 8, Group: 8, HeadBits: 8, LearnW: true, ActMomentum: 0.05}.QConfig())
	cx, cy := stream(500)
	task := &qat.NextTokenTask{LM: lm, Train: stream, First: 150, CalibIDs: [][]int{cx}, CalibTargets: [][]int{cy}}
	cfg.Steps, cfg.LR, cfg.MinLR, cfg.Warmup, cfg.QuantInit = 30, 2e-3, 2e-4, 3, qat.InitMinMax
	qt, _ := qat.NewTrainer(task, p, cfg)
	defer qt.Close()
	if err := qt.Fit(nil); err != nil {
		fmt.Println(err)
		return
	}
	q, _ := qt.Evaluate(val)
	fmt.Printf("float loss below 0.5: %v; QAT W4A8 loss below 0.7: %v, next-token accuracy above 90%%: %v\n",
		float.Loss < 0.5, q.Loss < 0.7, q.Acc > 0.9)
	// Output: float loss below 0.5: true; QAT W4A8 loss below 0.7: true, next-token accuracy above 90%: true
}
