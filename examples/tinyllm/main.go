// Command tinyllm trains a tiny Llama-style byte-level language model on Go standard library
// source (the text that ships with every Go toolchain, no download), then quantizes it after
// training (PTQ) and with quantization-aware training (QAT), optionally with SmoothQuant and
// Hadamard rotations, and prints a table of validation loss and perplexity:
//
//	go run ./examples/tinyllm          # defaults: 2 blocks, d=64, 4 heads, ctx 64 (a few minutes)
//	go run ./examples/tinyllm -quick   # smoke run, under a minute
//	go run ./examples/tinyllm -data ~/books -runs ptq:w8a8,qat:w4a8:hadamard
//
// Runs (-runs, comma separated) are method:bits[:smooth][:gptq][:hadamard|:quarot|:spin][:kv8|:kv4], method ptq or qat,
// bits wXaY: X-bit weights (symmetric, per group of -group inputs below 8 bits, per output
// channel at 8) and Y-bit activations (asymmetric per tensor, observer) at the input of every
// linear layer. QAT starts from the float checkpoint, learns sub-8-bit weight scales with LSQ and
// sub-8-bit activation scales and offsets with LSQ+ (8-bit ones use min/max and EMA observers),
// and continues the float run's data order; a float model trained for the same extra steps is
// the reference it should be compared with. smooth applies SmoothQuant (alpha -alpha) to the float
// weights first; hadamard rotates every linear input and weight online by a random Hadamard
// matrix; quarot folds QuaRot's rotations (random Hadamard residual and per-head rotations, online
// Hadamard before w2) into the weights; spin (QAT only) learns those rotations (SpinQuant, Cayley
// parameterisation, from the QuaRot start) and folds them; gptq (PTQ only) quantizes the block
// linears with GPTQ; kv8/kv4 fake-quantize the KV cache (per head). Loss is nats per byte.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/fastblas"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

type row struct {
	method, bits string
	loss         float64
	dur          time.Duration
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tinyllm:", err)
		os.Exit(2)
	}
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05"})
	if _, err := run(o, log); err != nil {
		log.Error(err)
		os.Exit(1)
	}
}

// run executes the whole experiment and returns the table rows.
func run(o options, log *logrus.Logger) ([]row, error) {
	exps, err := parseRuns(o.runs, o)
	if err != nil {
		return nil, err
	}
	if o.fastBLAS {
		defer fastblas.Install()()
	}
	d, err := loadData(o)
	if err != nil {
		return nil, err
	}
	corpus, valX, valY, calX, calY := d.corpus, d.valX, d.valY, d.calX, d.calY
	var tk text.ByteTokenizer
	cfg := graph.LMConfig{Vocab: tk.VocabSize(), Dim: o.dim, Layers: o.layers, Heads: o.heads, Hidden: o.hidden, Ctx: o.ctx}
	lm, err := graph.NewLM("tinyllm", cfg, tensor.Float32, o.seed)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"root": corpus.Root, "files": len(corpus.Files), "train_bytes": len(corpus.Train),
		"val_bytes": len(corpus.Val), "val_tokens_evaluated": len(valX) * o.batch * o.ctx, "params": lm.NumParams(),
		"config": fmt.Sprintf("%+v", lm.Config)}).Info("tinyllm")

	floatCfg, qatCfg := trainConfig(o, o.lr, o.steps, 20, log), trainConfig(o, o.qatLR, o.qatSteps, 10, log)
	var rows []row
	var floatDur time.Duration
	val := qat.Tokens{IDs: valX, Targets: valY}
	task := func(m *graph.LM, opts graph.LMOptions, first int) *qat.NextTokenTask {
		return newTask(m, opts, first, d)
	}
	ft, err := qat.NewTrainer(task(lm, graph.LMOptions{}, 0), nil, floatCfg)
	if err != nil {
		return nil, err
	}
	defer ft.Close()
	if o.load != "" {
		if err := ft.LoadCheckpoint(o.load); err != nil {
			return nil, err
		}
		log.WithField("path", o.load).Info("float model loaded")
	} else {
		if floatDur, err = fit(ft); err != nil {
			return nil, err
		}
		if o.ckpt != "" {
			if err := ft.SaveCheckpoint(o.ckpt); err != nil {
				return nil, err
			}
			log.WithField("path", o.ckpt).Info("float checkpoint saved")
		}
	}
	fm, err := ft.Evaluate(val)
	if err != nil {
		return nil, err
	}
	floatLoss := fm.Loss
	rows = append(rows, row{"float", "f32", floatLoss, floatDur})
	log.WithFields(logrus.Fields{"val_loss": fmt.Sprintf("%.4f", floatLoss), "ppl": fmt.Sprintf("%.3f", math.Exp(floatLoss))}).Info("float")
	// SmoothQuant and GPTQ statistics: max |x| (and X^T X) at every linear input of the float model
	stats, err := qat.CollectLMStats(lm, graph.LMOptions{Batch: o.batch}, func(i int) ([]int, []int) { return calX[i], calY[i] }, len(calX), anyGPTQ(exps))
	if err != nil {
		return nil, err
	}
	var base graph.Checkpoint
	lm.SaveState(&base)
	clone := func() *graph.LM { n, _ := graph.FromCheckpoint(&base); return n.(*graph.LM) }
	for _, e := range exps {
		if !e.qat {
			continue
		}
		// QAT trains qat-steps more than the float model: the fair float reference trains as long.
		tr, err := qat.NewTrainer(task(clone(), graph.LMOptions{}, o.steps), nil, qatCfg)
		if err != nil {
			return nil, err
		}
		dur, err := fit(tr)
		if err != nil {
			return nil, err
		}
		m, err := tr.Evaluate(val)
		if err != nil {
			return nil, err
		}
		tr.Close()
		rows = append(rows, row{fmt.Sprintf("float, %d more steps (QAT reference)", o.qatSteps), "f32", m.Loss, dur})
		break
	}

	var ints integerRuns
	var best *qat.Trainer
	var bestName string
	bestLoss := math.Inf(1)
	for _, e := range exps {
		start := time.Now()
		lq := clone()
		if e.smooth {
			if _, err := qat.SmoothQuant(lq, stats.AbsMax, o.alpha); err != nil {
				return nil, err
			}
		}
		opts, rots, err := rotations(e, lq, o)
		if err != nil {
			return nil, err
		}
		p, err := prepare(lq, e, stats)
		if err != nil {
			return nil, err
		}
		tc := floatCfg
		if e.qat {
			tc = qatCfg
		}
		tr, err := qat.NewTrainer(task(lq, opts, o.steps), p, tc)
		if err != nil {
			return nil, err
		}
		var dur time.Duration
		if e.qat {
			if rots != nil {
				tr.Hook = rots
			}
			if dur, err = fit(tr); err != nil {
				return nil, err
			}
			if rots != nil {
				if err := foldLearned(tr, rots, e, valX[:min(2, len(valX))], valY[:min(2, len(valY))], log); err != nil {
					return nil, err
				}
			}
		} else if err := tr.Calibrate(len(calX)); err != nil {
			return nil, err
		} else {
			dur = time.Since(start)
		}
		m, err := tr.Evaluate(val)
		if err != nil {
			return nil, err
		}
		l := m.Loss
		if o.outDir != "" {
			if err := saveQuantized(o, e, tr); err != nil {
				return nil, err
			}
		}
		rows = append(rows, row{e.method(), e.recipe.Bits(), l, dur})
		if rows, err = ints.export(rows, o, e, tr, d, log); err != nil {
			return nil, err
		}
		log.WithFields(logrus.Fields{"run": e.name, "val_loss": fmt.Sprintf("%.4f", l), "ppl": fmt.Sprintf("%.3f", math.Exp(l)),
			"took": dur.Round(time.Millisecond).String()}).Info("quantized model evaluated")
		if e.recipe.WBits < 8 && l < bestLoss {
			bestLoss, best, bestName = l, tr, e.name
		} else {
			tr.Close()
		}
	}

	fmt.Printf("\ntinyllm: %d-block d=%d %d-head ctx %d byte-level LM (%d params), %d KiB of %s, validation %d tokens\n\n",
		cfg.Layers, cfg.Dim, cfg.Heads, cfg.Ctx, lm.NumParams(), len(corpus.Train)>>10, corpusName(o), len(valX)*o.batch*o.ctx)
	printTable(rows, floatLoss)
	if o.gen > 0 {
		s, err := generate(ft, o.prompt, o.gen, o.temp, o.seed)
		if err != nil {
			return nil, err
		}
		fmt.Printf("\nsample (float, temperature %.2f):\n%s\n", o.temp, s)
		if best != nil {
			s, err := generate(best, o.prompt, o.gen, o.temp, o.seed)
			if err != nil {
				return nil, err
			}
			fmt.Printf("\nsample (%s, temperature %.2f):\n%s\n", bestName, o.temp, s)
		}
		if err := ints.printSample(o); err != nil {
			return nil, err
		}
	}
	if best != nil {
		best.Close()
	}
	return rows, nil
}
