package export

import (
	"errors"
	"fmt"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// LoadPrepared restores a trained model from a checkpoint written by qat.Trainer.SaveCheckpoint
// (or graph.SaveCheckpoint after Model.SaveState and Prepared.SaveState): m must be a freshly
// built model of the same architecture and c the QConfig it was trained with (Restore reads both
// from the checkpoint). The parameters are loaded into m.
func LoadPrepared(path string, m *graph.Model, c qat.QConfig) (*qat.Prepared, error) {
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return restore("checkpoint "+path, ck, m, c)
}

// PrepareCheckpoint is LoadPrepared for a checkpoint already in memory, for a caller that has
// read its metadata (model name, QConfig) and should not read and decode the file a second time.
func PrepareCheckpoint(ck *graph.Checkpoint, m *graph.Model, c qat.QConfig) (*qat.Prepared, error) {
	return restore("checkpoint", ck, m, c)
}

// Restore restores a trained model from a checkpoint written by qat (see LoadPrepared) with the
// architecture and QConfig the checkpoint records (graph.FromCheckpoint, or for checkpoints
// written before they recorded their architecture qat.NewModel of their model name;
// qat.CheckpointQConfig); a non-nil m or c overrides them (m must then be a freshly built model
// of the checkpoint's architecture).
func Restore(path string, m *graph.Model, c *qat.QConfig) (*qat.Prepared, error) {
	ck, err := graph.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if m == nil {
		if m, err = checkpointModel(ck); err != nil {
			return nil, fmt.Errorf("export: checkpoint %s: %w", path, err)
		}
	}
	var qc qat.QConfig
	if c != nil {
		qc = *c
	} else if qc, err = qat.CheckpointQConfig(ck); err != nil {
		return nil, fmt.Errorf("export: checkpoint %s: %w", path, err)
	}
	return restore("checkpoint "+path, ck, m, qc)
}

// restore loads ck into m and prepares it with c; src names the checkpoint in errors.
func restore(src string, ck *graph.Checkpoint, m *graph.Model, c qat.QConfig) (*qat.Prepared, error) {
	if name := ck.Meta[qat.MetaModel]; name != "" && name != m.Name {
		return nil, fmt.Errorf("export: %s holds model %q, not %q", src, name, m.Name)
	}
	if err := m.LoadState(ck); err != nil {
		return nil, fmt.Errorf("export: %s: %w", src, err)
	}
	p, err := qat.Prepare(m, c)
	if err != nil {
		return nil, err
	}
	if err := p.LoadState(ck); err != nil {
		return nil, fmt.Errorf("export: %s: %w", src, err)
	}
	return p, nil
}

// FromCheckpoint restores a trained model (see LoadPrepared) and lowers it (see Lower). It returns
// the Prepared model too, for Parity.
func FromCheckpoint(path string, m *graph.Model, c qat.QConfig, opt Options) (*qat.Prepared, *qmodel.Model, error) {
	p, err := LoadPrepared(path, m, c)
	if err != nil {
		return nil, nil, err
	}
	qm, err := Lower(p, opt)
	if err != nil {
		return p, nil, err
	}
	return p, qm, nil
}

// checkpointModel rebuilds the layer model a checkpoint records (graph.ModelFromCheckpoint), or
// for older checkpoints the named model of package qat. Other networks (an LM) are not supported
// by export yet.
func checkpointModel(ck *graph.Checkpoint) (*graph.Model, error) {
	n, err := graph.FromCheckpoint(ck)
	if err == nil {
		m, ok := n.(*graph.Model)
		if !ok {
			return nil, fmt.Errorf("it holds a %s model (%q): export to the integer runtime is not supported yet", n.Arch().Type, n.Arch().Name)
		}
		return m, nil
	}
	if !errors.Is(err, graph.ErrNoArch) {
		return nil, err
	}
	name := ck.Meta[qat.MetaModel]
	if name == "" {
		return nil, errors.New("it records neither its architecture nor its model name")
	}
	return qat.NewModel(name, 1)
}
