package qat

import (
	"fmt"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// TokenBatches returns the ids and next-token targets (Batch*Ctx each, row-major [Batch][Ctx])
// of training batch number step; data/text.Sampler.Next is one.
type TokenBatches func(step int64) (ids, targets []int)

// StepHook trains extra tensors of a graph alongside the parameters, e.g. learned rotations
// (SpinQuant) created by a graph.RotateFunc. Nodes is called once the training graph is built;
// the trainer differentiates the loss with respect to them, and after each optimizer step calls
// Step with the ratio of the step's learning rate to the peak one.
type StepHook interface {
	Nodes() G.Nodes
	Step(lrFactor float64) error
}

// NextTokenTask trains a transformer LM (*graph.LM) on next-token prediction: the model's
// output is the logits of every position [Batch*Ctx, Vocab], the target the one-hot next token.
// Training batch s is Train(First+s), a stream without epochs (Config.Steps sets the run's
// length); calibration batch i is (CalibIDs[i], CalibTargets[i]).
type NextTokenTask struct {
	LM *graph.LM
	// Opts are the LM's build options (rotations, points, a quantizer of its own for float
	// training such as gguf/llama.Preset); the trainer sets Batch, and Quant when it has a
	// Prepared.
	Opts  graph.LMOptions
	Train TokenBatches
	// First is the batch number of the first step: a run that continues another one's data
	// order (QAT after float training) starts where it stopped.
	First                  int64
	CalibIDs, CalibTargets [][]int
}

var _ Task = (*NextTokenTask)(nil)

// Network implements Task.
func (t *NextTokenTask) Network() graph.Network { return t.LM }

// StepsPerEpoch implements Task: 0, a stream.
func (t *NextTokenTask) StepsPerEpoch(int) int64 { return 0 }

// Build implements Task (batch statistics, dropout and BN folding do not apply to an LM).
func (t *NextTokenTask) Build(o BuildOptions) (*Graph, error) {
	if t.LM == nil {
		return nil, fmt.Errorf("qat: next-token task without an LM")
	}
	lo := t.Opts
	lo.Batch = o.Batch
	if o.Quant != nil {
		lo.Quant = o.Quant
	}
	n, err := t.LM.Build(lo)
	if err != nil {
		return nil, err
	}
	return &Graph{G: n.G, Batch: o.Batch, Out: n.Logits, Target: n.Target, Params: n.Params,
		Labels: make([]int, o.Batch*t.LM.Config.Ctx), LM: n}, nil
}

// Feed implements Task.
func (t *NextTokenTask) Feed(g *Graph, b BatchID) error {
	if b.Calib {
		if b.Index < 0 || b.Index >= int64(len(t.CalibIDs)) || len(t.CalibIDs) != len(t.CalibTargets) {
			return fmt.Errorf("qat: calibration batch %d of %d id and %d target batches", b.Index, len(t.CalibIDs), len(t.CalibTargets))
		}
		return feedTokens(g, t.CalibIDs[b.Index], t.CalibTargets[b.Index])
	}
	if t.Train == nil {
		return fmt.Errorf("qat: next-token task without training batches")
	}
	ids, tg := t.Train(t.First + b.Index)
	return feedTokens(g, ids, tg)
}

// feedTokens writes one batch of token ids and next-token targets into an LM graph.
func feedTokens(g *Graph, ids, targets []int) error {
	if g.LM == nil {
		return fmt.Errorf("qat: token batches need a graph of an LM")
	}
	if err := g.LM.SetBatch(ids, targets); err != nil {
		return err
	}
	copy(g.Labels, targets)
	return nil
}

// Tokens is a list of token batches as an EvalSet: batch i is (IDs[i], Targets[i]), each
// Batch*Ctx ids and next-token targets for a graph of Batch sequences.
type Tokens struct {
	IDs, Targets [][]int
}

var _ EvalSet = Tokens{}

// Batches implements EvalSet: one graph batch per entry (the graph's batch size must match
// the entries').
func (s Tokens) Batches(int) int { return len(s.IDs) }

// Fill implements EvalSet.
func (s Tokens) Fill(g *Graph, i int) (int, error) {
	if len(s.IDs) != len(s.Targets) || i >= len(s.IDs) {
		return 0, fmt.Errorf("qat: token batch %d of %d id and %d target batches", i, len(s.IDs), len(s.Targets))
	}
	return g.Batch, feedTokens(g, s.IDs[i], s.Targets[i])
}
