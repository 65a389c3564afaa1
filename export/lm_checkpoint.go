package export

import (
	"fmt"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
)

// RestoreLM rebuilds the language model a checkpoint records (graph.FromCheckpoint must give a
// *graph.LM), loads its parameters and prepares it with the QConfig the checkpoint records (or c
// when non-nil), restoring the quantizer state: a checkpoint of qat.Trainer (NextTokenTask) after QAT or
// Calibrate. A checkpoint without quantizer state is an error naming the missing site.
func RestoreLM(ck *graph.Checkpoint, c *qat.QConfig) (*qat.Prepared, error) {
	n, err := graph.FromCheckpoint(ck)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	lm, ok := n.(*graph.LM)
	if !ok {
		return nil, fmt.Errorf("%w: the checkpoint holds a %s model (%q), not a language model", ErrUnsupported, n.Arch().Type, n.Arch().Name)
	}
	if err := noOnlineRotations(ck); err != nil {
		return nil, err
	}
	var qc qat.QConfig
	if c != nil {
		qc = *c
	} else if qc, err = qat.CheckpointQConfig(ck); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	p, err := qat.Prepare(lm, qc)
	if err != nil {
		return nil, err
	}
	if err := p.LoadState(ck); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return p, nil
}

// noOnlineRotations refuses a checkpoint trained with online rotations of every linear input
// (graph.LMOptions.Rotate, recorded by examples/tinyllm as Meta "hadamard_seed" or tensors
// "rotation/<seed>"): they are not part of the weights, and the runtime does not run them.
func noOnlineRotations(ck *graph.Checkpoint) error {
	rotated := ck.Meta["hadamard_seed"] != ""
	for name := range ck.Tensors {
		if strings.HasPrefix(name, "rotation/") {
			rotated = true
		}
	}
	if rotated {
		return fmt.Errorf("%w: the checkpoint was trained with online rotations of every linear input (graph.LMOptions.Rotate), which are not in its weights and which the integer runtime does not run: fold the rotations into the weights (graph.LM.FoldRotations) or train without them", ErrUnsupported)
	}
	return nil
}
