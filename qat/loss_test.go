package qat

import (
	"math"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lossGraph builds loss(logits, onehot(labels)) on a float64 graph and returns a function that
// runs it and the loss's gradient with respect to the logits.
func lossGraph(t *testing.T, loss Loss, logits []float64, k int, labels []int) (run func() (float64, []float64), lv []float64) {
	t.Helper()
	n := len(labels)
	g := G.NewGraph()
	xv := tensor.New(tensor.WithShape(n, k), tensor.WithBacking(logits))
	tv := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(n, k))
	for i, c := range labels {
		tv.Data().([]float64)[i*k+c] = 1
	}
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(n, k), G.WithName("x"), G.WithValue(xv))
	y := G.NewMatrix(g, tensor.Float64, G.WithShape(n, k), G.WithName("y"), G.WithValue(tv))
	l, err := loss(x, y)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := G.Grad(l, x)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	t.Cleanup(func() { vm.Close() })
	return func() (float64, []float64) {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return scalar(l), append([]float64(nil), gs[0].Value().Data().([]float64)...)
	}, logits
}

// smoothedCE is label smoothing by hand: -1/N sum_i [(1-eps) logp_i[y_i] + eps/K sum_k logp_i[k]].
func smoothedCE(logits []float64, k int, labels []int, eps float64) float64 {
	var s float64
	for i, c := range labels {
		row := logits[i*k : (i+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - mx)
		}
		lse := mx + math.Log(z)
		var sumLogp float64
		for _, v := range row {
			sumLogp += v - lse
		}
		s += (1-eps)*(row[c]-lse) + eps/float64(k)*sumLogp
	}
	return -s / float64(len(labels))
}

// TestLabelSmoothing checks the loss against the formula computed by hand, its gradient against
// central differences over every logit, eps 0 against CrossEntropy, and that eps outside [0, 1)
// is refused.
func TestLabelSmoothing(t *testing.T) {
	logits := []float64{1.5, -0.3, 0.2, 2.0, 0.1, -1.2, -0.5, 0.7, 0.4, 3.0, -2.0, 0.0}
	labels := []int{1, 0, 3}
	const k = 4
	for _, eps := range []float64{0, 0.1, 0.5} {
		ls, err := LabelSmoothing(eps)
		if err != nil {
			t.Fatal(err)
		}
		run, v := lossGraph(t, ls, append([]float64(nil), logits...), k, labels)
		got, grad := run()
		if want := smoothedCE(logits, k, labels, eps); math.Abs(got-want) > 1e-12 {
			t.Errorf("eps %v: loss %v, by hand %v", eps, got, want)
		}
		num := gradcheck.Numerical(v, gradcheck.DefaultEps, func() float64 { l, _ := run(); return l })
		if err := gradcheck.Compare("label smoothing", grad, num, gradcheck.Default); err != nil {
			t.Errorf("eps %v: %v", eps, err)
		}
		if eps == 0 {
			ce, _ := lossGraph(t, CrossEntropy, append([]float64(nil), logits...), k, labels)
			if c, _ := ce(); math.Abs(c-got) > 1e-12 {
				t.Errorf("eps 0: %v, cross-entropy %v", got, c)
			}
		}
	}
	for _, eps := range []float64{-0.1, 1, math.NaN()} {
		if _, err := LabelSmoothing(eps); err == nil {
			t.Errorf("LabelSmoothing(%v): no error", eps)
		}
	}
}

// brier is a user-supplied Loss: the mean over rows of sum_k (softmax(out)_k - target_k)^2.
// softmax is exp(LogSoftMax): see Loss on Gorgonia's SoftMax.
func brier(out, target *G.Node) (*G.Node, error) {
	p, err := G.Exp(G.Must(G.LogSoftMax(out)))
	if err != nil {
		return nil, err
	}
	d, err := G.Sub(p, target)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(G.Must(G.Square(d)))
	if err != nil {
		return nil, err
	}
	return G.HadamardProd(s, G.NewConstant(float32(1/float64(out.Shape()[0]))))
}

// brierByHand computes brier from the logits of rows with the given labels.
func brierByHand(logits []float32, labels []int) float64 {
	k := len(logits) / len(labels)
	var s float64
	for i, c := range labels {
		row := logits[i*k : (i+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, float64(v))
		}
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v) - mx)
		}
		for j, v := range row {
			p := math.Exp(float64(v)-mx) / z
			if j == c {
				p--
			}
			s += p * p
		}
	}
	return s / float64(len(labels))
}

// TestTrainerUserLoss: the Trainer minimises and reports a user-supplied loss for both model
// kinds, checked against the loss computed by hand from the graph's output, batch by batch; a
// few training steps lower it.
func TestTrainerUserLoss(t *testing.T) {
	cases := []struct {
		name string
		task Task
		cfg  Config
		set  EvalSet
	}{
		{"classify", Classify(tinyModel(3), outlierSet{64}), Config{BatchSize: 16, EvalBatch: 16, LR: 3e-3, Epochs: 3},
			Images{Data: outlierSet{32}}},
		{"next-token", &NextTokenTask{LM: smallLM(t), Train: periodicBatches(4, 8)}, Config{BatchSize: 4, LR: 1e-2, Steps: 30},
			func() EvalSet { x, y := lmBatches(periodicBatches(4, 8), 1000, 2); return Tokens{IDs: x, Targets: y} }()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Loss, c.cfg.Logger, c.cfg.Seed = brier, quietLogger(), 1
			tr, err := NewTrainer(c.task, nil, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			byHand := func() float64 {
				var s float64
				nb := c.set.Batches(tr.Cfg.EvalBatch)
				for i := 0; i < nb; i++ {
					g, l, err := tr.Forward(c.set, i)
					if err != nil {
						t.Fatal(err)
					}
					h := brierByHand(g.Out.Value().Data().([]float32), g.Labels)
					if math.Abs(h-l) > 1e-5*math.Max(1, h) {
						t.Fatalf("batch %d: trainer loss %v, by hand %v", i, l, h)
					}
					s += h
				}
				return s / float64(nb)
			}
			before, err := tr.Evaluate(c.set)
			if err != nil {
				t.Fatal(err)
			}
			if h := byHand(); math.Abs(before.Loss-h) > 1e-5 {
				t.Fatalf("Evaluate %v, by hand %v", before.Loss, h)
			}
			if err := tr.Fit(nil); err != nil {
				t.Fatal(err)
			}
			after, err := tr.Evaluate(c.set)
			if err != nil {
				t.Fatal(err)
			}
			if h := byHand(); math.Abs(after.Loss-h) > 1e-5 {
				t.Fatalf("Evaluate %v, by hand %v", after.Loss, h)
			}
			t.Logf("Brier loss %.4f -> %.4f, accuracy %.3f -> %.3f", before.Loss, after.Loss, before.Acc, after.Acc)
			if !(after.Loss < before.Loss) {
				t.Fatalf("training on the user loss did not lower it: %v -> %v", before.Loss, after.Loss)
			}
		})
	}
}

// TestNewTrainerChecks: a Prepared of another network, Steps with a task that has epochs, a
// stream task without Steps, and a missing task are errors.
func TestNewTrainerChecks(t *testing.T) {
	m := tinyModel(1)
	p, err := Prepare(tinyModel(2), W8A8())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTrainer(Classify(m, outlierSet{16}), p, Config{Logger: quietLogger()}); err == nil {
		t.Error("Prepared of another model: no error")
	}
	if _, err := NewTrainer(Classify(m, outlierSet{16}), nil, Config{Steps: 3, BatchSize: 8, Logger: quietLogger()}); err == nil {
		t.Error("Steps with a data set: no error")
	}
	tr, err := NewTrainer(&NextTokenTask{LM: smallLM(t), Train: periodicBatches(4, 8)}, nil, Config{BatchSize: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Fit(nil); err == nil {
		t.Error("a stream task without Steps: no error")
	}
	if _, err := NewTrainer(nil, nil, Config{}); err == nil {
		t.Error("nil task: no error")
	}
	if _, err := NewTrainer(&NextTokenTask{}, nil, Config{}); err == nil {
		t.Error("task without a network: no error")
	}
	_ = graph.InputName
}
