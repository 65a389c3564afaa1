package qat

import (
	"fmt"
	"math/rand/v2"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Dataset is a labelled image set (data/mnist.Set implements it).
type Dataset interface {
	Len() int
	// Batch writes the examples with the given indices into x (NCHW float32) and y (class ids).
	Batch(idx []int, x []float32, y []int)
}

// ClassifyTask trains a layer model (*graph.Model: CNNs, MLPs) to classify the examples of a
// Dataset: the model's output is a vector of class scores, the target the one-hot label. Each
// epoch visits the training set in an order shuffled by (Config.Seed, epoch); calibration
// batches are a seeded random sample of it. Train may be nil for a trainer that only evaluates.
type ClassifyTask struct {
	Model *graph.Model
	Train Dataset
	// perm caches the shuffled order of epoch permEpoch (seed permSeed).
	perm                []int
	permEpoch, permSeed uint64
}

var _ Task = (*ClassifyTask)(nil)

// Classify returns the classification task of m on train.
func Classify(m *graph.Model, train Dataset) *ClassifyTask {
	return &ClassifyTask{Model: m, Train: train}
}

// Network implements Task.
func (c *ClassifyTask) Network() graph.Network { return c.Model }

// check reports why the task cannot train.
func (c *ClassifyTask) check() error {
	if c.Model == nil {
		return fmt.Errorf("qat: classification task without a model")
	}
	if err := c.Model.Err(); err != nil {
		return err
	}
	if c.Model.Dtype != tensor.Float32 {
		return fmt.Errorf("qat: trainer needs a float32 model")
	}
	if os := c.Model.OutShape(); len(os) != 1 {
		return fmt.Errorf("qat: model output %v is not a vector of class scores", os)
	}
	return nil
}

// Build implements Task.
func (c *ClassifyTask) Build(o BuildOptions) (*Graph, error) {
	n, err := c.Model.Build(graph.Options{Batch: o.Batch, Train: o.Train, FreezeBN: o.FreezeBN, FoldBN: o.FoldBN, Quant: o.Quant})
	if err != nil {
		return nil, err
	}
	k := c.Model.OutShape()[0]
	yv := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(o.Batch, k))
	y := G.NewMatrix(n.G, tensor.Float32, G.WithShape(o.Batch, k), G.WithName(c.Model.Name+"/labels"), G.WithValue(yv))
	g := &Graph{G: n.G, Batch: o.Batch, Out: n.Out, Target: y, Params: n.Params, Labels: make([]int, o.Batch), Net: n}
	if len(n.Masks) > 0 {
		g.BeforeTrain = n.FillMasks
	}
	if o.Train && !o.FreezeBN {
		g.AfterTrain = n.UpdateRunningStats
	}
	return g, nil
}

// StepsPerEpoch implements Task: full batches in one pass over Train.
func (c *ClassifyTask) StepsPerEpoch(batch int) int64 {
	if c.Train == nil || batch < 1 {
		return 0
	}
	return int64(c.Train.Len() / batch)
}

// Feed implements Task: training step s is batch s mod StepsPerEpoch of epoch s / StepsPerEpoch
// in the epoch's shuffled order; calibration batch i the i-th batch of a sample shuffled by
// (Seed, 0xca11b), wrapping around.
func (c *ClassifyTask) Feed(g *Graph, b BatchID) error {
	if c.Train == nil {
		return fmt.Errorf("qat: classification task without training data")
	}
	n := c.Train.Len()
	if n == 0 {
		return fmt.Errorf("qat: empty training set")
	}
	B := g.Batch
	idx := make([]int, B)
	if b.Calib {
		perm := rand.New(rand.NewPCG(b.Seed, 0xca11b)).Perm(n)
		for i := range idx {
			idx[i] = perm[(int(b.Index)*B+i)%n]
		}
	} else {
		spe := int64(n / B)
		if spe == 0 {
			return fmt.Errorf("qat: %d training examples for batch size %d", n, B)
		}
		ep, s := uint64(b.Index/spe), b.Index%spe
		if c.perm == nil || len(c.perm) != n || c.permEpoch != ep || c.permSeed != b.Seed {
			c.perm, c.permEpoch, c.permSeed = rand.New(rand.NewPCG(b.Seed, ep)).Perm(n), ep, b.Seed
		}
		copy(idx, c.perm[s*int64(B):(s+1)*int64(B)])
	}
	return feedImages(g, c.Train, idx)
}

// feedImages writes the examples idx of d into g's input and their one-hot labels into its
// target and Labels. A label outside the model's classes is an error naming the example.
func feedImages(g *Graph, d Dataset, idx []int) error {
	if g.Net == nil {
		return fmt.Errorf("qat: image batches need a graph of a layer model")
	}
	x := g.Net.XVal.Data().([]float32)
	d.Batch(idx, x, g.Labels)
	yv := g.Target.Value().Data().([]float32)
	clear(yv)
	k := g.Target.Shape()[1]
	for i, c := range g.Labels {
		if c < 0 || c >= k {
			return labelError(idx[i], c, k)
		}
		yv[i*k+c] = 1
	}
	return nil
}

// Images is an image Dataset as an EvalSet: its first Limit examples (0: all) in order, the last
// batch padded with its last example.
type Images struct {
	Data  Dataset
	Limit int
}

var _ EvalSet = Images{}

func (s Images) n() int {
	n := s.Data.Len()
	if s.Limit > 0 && s.Limit < n {
		n = s.Limit
	}
	return n
}

// Batches implements EvalSet.
func (s Images) Batches(batch int) int { return (s.n() + batch - 1) / batch }

// Fill implements EvalSet.
func (s Images) Fill(g *Graph, i int) (int, error) {
	n, B := s.n(), g.Batch
	from := i * B
	valid := min(B, n-from)
	if valid < 1 {
		return 0, fmt.Errorf("qat: evaluation batch %d of %d examples", i, n)
	}
	idx := make([]int, B)
	for j := range idx {
		idx[j] = from + min(j, valid-1)
	}
	return valid, feedImages(g, s.Data, idx)
}
