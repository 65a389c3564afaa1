package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
)

// rotateSeed selects the rotations: for hadamard runs site s uses seed rotateSeed ^ fnv64a(s)
// (graph.LMOptions); quarot and spin runs start from the randomised Hadamard matrices of it.
const rotateSeed = 0x51ab

// rotations prepares the rotations of run e on its model lq. hadamard rotates every linear input
// and weight online (qat.HadamardRotate); quarot folds QuaRot's randomised Hadamard rotations
// (residual, per head, and the online Hadamard before w2) into lq's weights now; spin returns
// SpinQuant's learned rotations, multiplied into the weights inside the graph while QAT trains
// them (opts.Rotations and the trainer's hook), to be folded by foldLearned afterwards.
func rotations(e exp, lq *graph.LM, o options) (graph.LMOptions, *qat.LearnedRotations, error) {
	opts := graph.LMOptions{RotateSeed: rotateSeed}
	switch {
	case e.rotate:
		opts.Rotate = qat.HadamardRotate
	case e.quarot:
		r, err := qat.QuaRotRotations(lq.Config, rotateSeed)
		if err != nil {
			return opts, nil, err
		}
		return opts, nil, lq.FoldRotations(r)
	case e.spin:
		rots, err := qat.NewLearnedRotations(lq.Config, lq.Dtype, rotateSeed, o.spinLR, true)
		if err != nil {
			return opts, nil, err
		}
		opts.Rotations = rots.Rotations()
		return opts, rots, nil
	}
	return opts, nil, nil
}

// foldLearned folds the trained rotations into the trainer's model and switches it to the folded
// model (no rotation left in the graph but the online Hadamard before w2); it logs the loss on
// the first validation batches before and after, which agree up to float rounding.
func foldLearned(tr *qat.Trainer, rots *qat.LearnedRotations, e exp, valX, valY [][]int, log *logrus.Logger) error {
	val := qat.Tokens{IDs: valX, Targets: valY}
	before, err := tr.Evaluate(val)
	if err != nil {
		return err
	}
	task := tr.Task.(*qat.NextTokenTask)
	if err := task.LM.FoldRotations(*rots.Rotations()); err != nil {
		return err
	}
	tr.Close()
	task.Opts.Rotations, tr.Hook = nil, nil
	after, err := tr.Evaluate(val)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"run": e.name, "max|RtR-I|": fmt.Sprintf("%.1e", rots.MaxOrthogonalityError()),
		"max|R-R0|": fmt.Sprintf("%.3f", rots.MaxDrift()), "val_loss_in_graph": fmt.Sprintf("%.5f", before.Loss),
		"val_loss_folded": fmt.Sprintf("%.5f", after.Loss)}).Info("learned rotations folded into the weights")
	return nil
}

// saveQuantized writes the trainer's checkpoint of one run (weights after SmoothQuant and folded
// rotations, the Prepared quantizer state, architecture and QConfig) to <out>/<run>.ckpt; hadamard
// runs, whose rotations stay online, record the rotation seed.
func saveQuantized(o options, e exp, tr *qat.Trainer) error {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	c := tr.Checkpoint()
	c.Meta["run"], c.Meta["method"], c.Meta["bits"] = e.name, e.method(), e.recipe.Bits()
	if e.rotate {
		c.Meta["hadamard_seed"] = fmt.Sprint(rotateSeed)
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(e.name) + ".ckpt"
	return graph.SaveCheckpoint(filepath.Join(o.outDir, name), c)
}
