package qat

import (
	"math/rand/v2"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// Task connects the one Trainer to a network and its data: it lowers the network to a Gorgonia
// graph (Build) and writes batches into that graph's inputs (Feed). The trainer adds the loss
// (Config.Loss on Graph.Out and Graph.Target), the gradients, the optimizer, the schedules, the
// quantizer initialisation, evaluation and checkpoints, the same for every task.
//
// ClassifyTask (a *graph.Model on a labelled image Dataset) and NextTokenTask (a *graph.LM on
// token windows) are the built-in tasks; a user task implements the three methods.
type Task interface {
	// Network returns the network the task trains.
	Network() graph.Network
	// Build lowers the network to a new graph as o asks.
	Build(o BuildOptions) (*Graph, error)
	// Feed writes the batch b into the inputs of g (a graph Build returned) and sets g.Labels
	// when the task has classes (accuracy).
	Feed(g *Graph, b BatchID) error
	// StepsPerEpoch is the number of training batches of batch examples in one pass over the
	// training data, or 0 for a stream of batches without epochs (then Config.Steps is the
	// length of an epoch).
	StepsPerEpoch(batch int) int64
}

// BuildOptions is what the Trainer asks of a graph.
type BuildOptions struct {
	Batch int  // examples per batch (images, sequences)
	Train bool // a training graph: batch statistics in BatchNorm, dropout active
	// FreezeBN uses running BatchNorm statistics even in a training graph (Config.BNFreeze).
	FreezeBN bool
	// FoldBN folds BatchNorm into the preceding conv/linear as export does (graph.Options.FoldBN).
	FoldBN bool
	// Quant is the quantizer of a prepared network (Prepared.Quantizer or EvalQuantizer); nil
	// builds the float graph.
	Quant graph.Quantizer
}

// BatchID names a batch the Trainer asks a Task to write into a graph.
type BatchID struct {
	// Calib asks for calibration batch Index (quantizer initialisation before QAT,
	// Trainer.Calibrate) instead of training batch Index.
	Calib bool
	// Index is the training step, counted from 0 over the whole run (across epochs and resumed
	// runs), or the calibration batch number.
	Index int64
	// Seed is the trainer's Config.Seed: the data order of a task that shuffles.
	Seed uint64
}

// Graph is a network lowered to a Gorgonia graph for one batch size, as a Task builds it.
type Graph struct {
	G     *G.ExprGraph
	Batch int // examples per batch
	// Out is the network output, one row per prediction (class scores [Batch, K], next-token
	// logits [Batch*Ctx, Vocab]); Target is the one-hot target of the same shape that Feed fills.
	// The trainer's Loss maps the two to the scalar loss.
	Out, Target *G.Node
	// Params are the nodes of the network's parameters by name (graph.Param.Name), bound to their
	// values: the trainer differentiates the loss with respect to the trainable ones.
	Params map[string]*G.Node
	// Labels, when the task has classes, holds the class of every row of Out for the batch fed
	// last (len = rows of Out); the trainer reports accuracy = argmax(Out row) == label.
	Labels []int
	// BeforeTrain, when set, runs before each training forward pass with a random source seeded
	// by (Config.Seed, step) (dropout masks).
	BeforeTrain func(rng *rand.Rand)
	// AfterTrain, when set, runs after each training forward/backward pass with finite values
	// (BatchNorm running statistics).
	AfterTrain func()

	// Net is the lowered *graph.Model (ClassifyTask), LM the lowered *graph.LM (NextTokenTask);
	// nil otherwise.
	Net *graph.Net
	LM  *graph.LMNet
}

// EvalSet is evaluation data for a Trainer: a finite set of examples in batches.
type EvalSet interface {
	// Batches returns the number of batches of batch examples that cover the set.
	Batches(batch int) int
	// Fill writes evaluation batch i into g (and g.Labels, if the task has classes) and returns
	// how many of its examples count: the rest pad the last batch.
	Fill(g *Graph, i int) (valid int, err error)
}

// Metrics are the mean loss and, when the task has classes, the accuracy over a set.
type Metrics struct {
	Loss float64
	Acc  float64 // fraction of rows whose argmax is the label (0 without labels)
}
