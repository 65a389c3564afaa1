package main

import (
	"fmt"
	"os"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// lmExportBatch is the number of sequences per run of the export graph.
const lmExportBatch = 8

// isLMCheckpoint reports whether the checkpoint records a language model architecture.
func isLMCheckpoint(ck *graph.Checkpoint) bool {
	n, err := graph.FromCheckpoint(ck)
	if err != nil {
		return false
	}
	_, ok := n.(*graph.LM)
	return ok
}

// runExportLM exports a language-model checkpoint (written by qat.Trainer on a NextTokenTask after QAT or
// calibration): the runtime's extra quantization points are calibrated on -calib-batches batches
// of the text's training part, the parity check runs on -parity held-out sequences.
func runExportLM(e *env, ck *graph.Checkpoint, a exportArgs) error {
	if a.onnx || a.uint8 || a.softmax || a.model != "" {
		return usagef("-format onnx, -uint8, -softmax and -model do not apply to a language model")
	}
	var qc *qat.QConfig
	if a.qconfig != "" {
		c, err := qat.Preset(a.qconfig)
		if err != nil {
			return usagef("%v", err)
		}
		qc = &c
	}
	p, err := export.RestoreLM(ck, qc)
	if err != nil {
		return fmt.Errorf("%s: %w (export an LM checkpoint written after QAT or qat.Trainer.Calibrate)", a.ckpt, err)
	}
	lm := p.Net.(*graph.LM)
	opts := text.Options{MaxBytes: a.maxBytes}
	var corpus *text.Corpus
	if a.text == "" {
		corpus, err = text.LoadGoSource(opts)
	} else {
		corpus, err = text.Load(a.text, opts)
	}
	if err != nil {
		return err
	}
	var tk text.ByteTokenizer
	if lm.Config.Vocab != tk.VocabSize() {
		return fmt.Errorf("%s: the LM has a vocabulary of %d; the text is read as bytes (256)", a.ckpt, lm.Config.Vocab)
	}
	T := lm.Config.Ctx
	calX, _ := text.Windows(tk.Encode(corpus.Train), lmExportBatch, T, a.calib)
	if len(calX) == 0 {
		return fmt.Errorf("the training text (%d bytes) is shorter than one calibration batch of %d x %d bytes", len(corpus.Train), lmExportBatch, T)
	}
	var valX, valY [][]int
	if a.parity > 0 {
		valX, valY = text.Windows(tk.Encode(corpus.Val), lmExportBatch, T, max(1, a.parity/lmExportBatch))
		if len(valX) == 0 {
			return fmt.Errorf("the held-out text (%d bytes) is shorter than one parity batch of %d x %d bytes", len(corpus.Val), lmExportBatch, T)
		}
	}
	fmt.Fprintf(e.stderr, "qatgo export: language model %q (%s): calibrating the runtime points on %d x %d x %d bytes of %s\n",
		lm.Name, p.Config.Name, len(calX), lmExportBatch, T, corpus.Root)
	if a.out == "" {
		a.out = lm.Name + "-" + p.Config.Name + ".qm"
	}
	qm, err := export.Lower(p, export.Options{Batch: lmExportBatch, Calib: calX,
		Meta: map[string]string{"checkpoint": a.ckpt}})
	if err != nil {
		return err
	}
	var parityErr error
	if len(valX) > 0 {
		ev, err := export.NewLMEval(p, qm, lmExportBatch)
		if err != nil {
			return err
		}
		rep, err := ev.Parity(valX, valY)
		ev.Close()
		if err != nil {
			return err
		}
		if err := rep.Write(e.stdout); err != nil {
			return err
		}
		th := export.LMThresholds{MaxLossIncrease: a.maxLossInc}
		if a.agreeSet {
			th.MinAgreement = a.th.MinAgreement
		}
		if a.th.MinWithin1 > 0 && a.within1Set {
			th.MinWithin1 = a.th.MinWithin1
		}
		if parityErr = rep.Check(th); parityErr != nil && !a.force {
			return fmt.Errorf("%w; nothing written (use -force to write anyway, or relax -min-agree/-max-loss-increase)", parityErr)
		}
	}
	if err := qmodel.WriteFile(a.out, qm); err != nil {
		return err
	}
	fi, err := os.Stat(a.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d bytes (%d ops; float32 parameters %d bytes, %.2fx larger)\n",
		a.out, fi.Size(), len(qm.Ops), 4*lm.NumParams(), float64(4*lm.NumParams())/float64(fi.Size()))
	if parityErr != nil {
		return fmt.Errorf("%w (written anyway: -force)", parityErr)
	}
	return nil
}
