// Command tinyllm trains a tiny Llama-style byte-level language model on Go standard library
// source (the text that ships with every Go toolchain, no download), then quantizes it after
// training (PTQ) and with quantization-aware training (QAT), optionally with SmoothQuant and
// Hadamard rotations, and prints a table of validation loss and perplexity:
//
//	go run ./examples/tinyllm          # defaults: 2 blocks, d=64, 4 heads, ctx 64 (a few minutes)
//	go run ./examples/tinyllm -quick   # smoke run, under a minute
//	go run ./examples/tinyllm -data ~/books -runs ptq:w8a8,qat:w4a8:hadamard
//
// Runs (-runs, comma separated) are method:bits[:smooth][:hadamard] with method ptq or qat and
// bits wXaY: X-bit weights (symmetric, per group of -group inputs below 8 bits, per output
// channel at 8) and Y-bit activations (asymmetric per tensor, observer) at the input of every
// linear layer. QAT starts from the float checkpoint, learns sub-8-bit weight scales with LSQ and
// sub-8-bit activation scales and offsets with LSQ+ (8-bit ones use min/max and EMA observers),
// and continues the float run's data order; a float model trained for the same extra steps is
// the reference it should be compared with. smooth applies SmoothQuant (alpha -alpha) to the float
// weights first; hadamard rotates every linear input and weight by a random Hadamard matrix;
// spin (QAT only) learns those rotations with Cayley SGD, starting from the Hadamard ones.
// Loss is nats per byte; ppl = exp(loss); bpb = loss/ln 2.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/fastblas"
	"github.com/qatgo/qatgo/graph"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

type options struct {
	data                       string
	maxBytes                   int
	dim, layers, heads, hidden int
	ctx, batch                 int
	steps, qatSteps            int
	lr, qatLR, wd              float64
	evalBatches, calib         int
	group, headBits            int
	alpha, spinLR              float64
	runs                       string
	seed                       uint64
	quick                      bool
	load, ckpt, outDir         string
	gen                        int
	temp                       float64
	prompt                     string
	fastBLAS                   bool
}

type row struct {
	method, bits string
	loss         float64
	dur          time.Duration
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05"})
	if _, err := run(o, log); err != nil {
		log.Error(err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("tinyllm", flag.ContinueOnError)
	fs.StringVar(&o.data, "data", "", "text file or folder to train on (default: a subset of $(go env GOROOT)/src)")
	fs.IntVar(&o.maxBytes, "max-bytes", 4<<20, "corpus size cap in bytes")
	fs.IntVar(&o.dim, "dim", 64, "model width")
	fs.IntVar(&o.layers, "layers", 2, "transformer blocks")
	fs.IntVar(&o.heads, "heads", 4, "attention heads")
	fs.IntVar(&o.hidden, "hidden", 128, "SwiGLU hidden width (a power of two for hadamard runs)")
	fs.IntVar(&o.ctx, "ctx", 64, "context length")
	fs.IntVar(&o.batch, "batch", 16, "sequences per batch")
	fs.IntVar(&o.steps, "steps", 2000, "float training steps")
	fs.IntVar(&o.qatSteps, "qat-steps", 300, "QAT steps per qat run")
	fs.Float64Var(&o.lr, "lr", 3e-3, "float peak learning rate (AdamW, warm-up + cosine)")
	fs.Float64Var(&o.qatLR, "qat-lr", 5e-4, "QAT peak learning rate")
	fs.Float64Var(&o.wd, "wd", 0.05, "AdamW weight decay on linear weights")
	fs.IntVar(&o.evalBatches, "eval-batches", 24, "validation batches (consecutive windows of the validation text)")
	fs.IntVar(&o.calib, "calib", 8, "calibration batches for PTQ and SmoothQuant statistics")
	fs.IntVar(&o.group, "group", 32, "weight quantization group size below 8 bits (0: per output channel)")
	fs.IntVar(&o.headBits, "head-bits", 8, "bits of the output projection weight")
	fs.Float64Var(&o.alpha, "alpha", 0.5, "SmoothQuant migration strength")
	fs.Float64Var(&o.spinLR, "spin-lr", 0.5, "peak Cayley SGD learning rate of learned rotations (spin runs)")
	fs.StringVar(&o.runs, "runs", "ptq:w8a8,ptq:w4a8,ptq:w4a8:smooth,ptq:w4a8:hadamard,ptq:w4a4,ptq:w4a4:smooth,ptq:w4a4:hadamard,qat:w8a8,qat:w4a8:hadamard,qat:w4a4:hadamard", "quantized runs, see the command doc")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for initialisation and data order")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: small corpus, few steps, 3 runs (under a minute)")
	fs.StringVar(&o.load, "load", "", "load the float model from this checkpoint instead of training it")
	fs.StringVar(&o.ckpt, "ckpt", filepath.Join(os.TempDir(), "qatgo-tinyllm-float.ckpt"), "where to save the float checkpoint (empty: do not save)")
	fs.StringVar(&o.outDir, "out", filepath.Join(os.TempDir(), "qatgo-tinyllm"), "directory for the quantized models' checkpoints (weights after SmoothQuant, quantizer scales and zero points); empty: do not save")
	fs.IntVar(&o.gen, "gen", 240, "bytes to generate at the end")
	fs.Float64Var(&o.temp, "temp", 0.7, "sampling temperature")
	fs.StringVar(&o.prompt, "prompt", "func (b *Buffer) ", "generation prompt")
	fs.BoolVar(&o.fastBLAS, "fastblas", true, "use qatgo's SIMD Sgemm for Gorgonia's matmuls")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		o.maxBytes, o.steps, o.qatSteps, o.evalBatches, o.calib, o.gen = 1<<20, 200, 50, 6, 4, 120
		o.runs = "ptq:w8a8,ptq:w4a4:smooth,ptq:w4a4:hadamard,qat:w4a8:hadamard"
	}
	return o, nil
}

type exp struct {
	name           string
	qat            bool
	spec           qspec
	smooth, rotate bool
	spin           bool // learned rotations (QAT only)
}

func parseRuns(s string, o options) ([]exp, error) {
	var es []exp
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		f := strings.Split(r, ":")
		if len(f) < 2 || (f[0] != "ptq" && f[0] != "qat") {
			return nil, fmt.Errorf("run %q: want ptq|qat:wXaY[:smooth][:hadamard|:spin]", r)
		}
		e := exp{name: r, qat: f[0] == "qat", spec: qspec{group: o.group, headBits: o.headBits}}
		if _, err := fmt.Sscanf(f[1], "w%da%d", &e.spec.wbits, &e.spec.abits); err != nil {
			return nil, fmt.Errorf("run %q: bits %q: %v", r, f[1], err)
		}
		for _, x := range f[2:] {
			switch x {
			case "smooth":
				e.smooth = true
			case "hadamard":
				e.rotate = true
			case "spin":
				e.spin = true
			default:
				return nil, fmt.Errorf("run %q: unknown option %q", r, x)
			}
		}
		if e.spin && (!e.qat || e.rotate) {
			return nil, fmt.Errorf("run %q: spin (learned rotations, initialised at the Hadamard ones) is for qat runs without hadamard", r)
		}
		if e.spec.headBits < e.spec.wbits {
			e.spec.headBits = e.spec.wbits
		}
		e.spec.learnW = e.qat && e.spec.wbits < 8
		e.spec.learnA = e.qat && e.spec.abits < 8
		if e.qat {
			e.spec.actMomentum = 0.05
		}
		es = append(es, e)
	}
	return es, nil
}

func (e exp) method() string {
	m := "PTQ"
	if e.qat {
		m = "QAT"
		switch {
		case e.spec.learnW && e.spec.learnA:
			m += " (LSQ w, LSQ+ a)"
		case e.spec.learnW:
			m += " (LSQ w)"
		}
	}
	if e.smooth {
		m += " + SmoothQuant"
	}
	if e.rotate {
		m += " + Hadamard"
	}
	if e.spin {
		m += " + learned rotation"
	}
	return m
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
	topts := text.Options{MaxBytes: o.maxBytes}
	var corpus *text.Corpus
	if o.data == "" {
		corpus, err = text.LoadGoSource(topts)
	} else {
		corpus, err = text.Load(o.data, topts)
	}
	if err != nil {
		return nil, err
	}
	var tk text.ByteTokenizer
	trainTok, valTok := tk.Encode(corpus.Train), tk.Encode(corpus.Val)
	sampler, err := text.NewSampler(trainTok, o.batch, o.ctx, o.seed)
	if err != nil {
		return nil, err
	}
	valX, valY := text.Windows(valTok, o.batch, o.ctx, o.evalBatches)
	if len(valX) == 0 {
		return nil, fmt.Errorf("validation text (%d bytes) is shorter than one batch", len(valTok))
	}
	calib := func(i int) ([]int, []int) { return sampler.Next(int64(1<<40 + i)) } // disjoint from training steps
	cfg := graph.LMConfig{Vocab: tk.VocabSize(), Dim: o.dim, Layers: o.layers, Heads: o.heads, Hidden: o.hidden, Ctx: o.ctx}
	lm, err := graph.NewLM("tinyllm", cfg, tensor.Float32, o.seed)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"root": corpus.Root, "files": len(corpus.Files), "train_bytes": len(corpus.Train),
		"val_bytes": len(corpus.Val), "val_tokens_evaluated": len(valX) * o.batch * o.ctx, "params": lm.NumParams(),
		"config": fmt.Sprintf("%+v", lm.Config)}).Info("tinyllm")

	var rows []row
	var floatDur time.Duration
	if o.load != "" {
		c, err := graph.LoadCheckpoint(o.load)
		if err != nil {
			return nil, err
		}
		if err := lm.LoadState(c); err != nil {
			return nil, err
		}
		log.WithField("path", o.load).Info("float model loaded")
	} else {
		tr, err := newTrainRun("float", lm, nil, nil, nil, o.batch, sampler, o.wd, log)
		if err != nil {
			return nil, err
		}
		floatDur, err = tr.fit(o.steps, 0, o.lr, max(o.steps/20, 1))
		tr.close()
		if err != nil {
			return nil, err
		}
		if o.ckpt != "" {
			c := &graph.Checkpoint{Step: int64(o.steps), Seed: o.seed, Meta: map[string]string{"config": fmt.Sprintf("%+v", lm.Config)}}
			lm.SaveState(c)
			if err := graph.SaveCheckpoint(o.ckpt, c); err != nil {
				return nil, err
			}
			log.WithField("path", o.ckpt).Info("float checkpoint saved")
		}
	}
	ev, err := newEvaluator(lm, nil, nil, o.batch)
	if err != nil {
		return nil, err
	}
	floatLoss, err := ev.loss(valX, valY)
	if err != nil {
		return nil, err
	}
	rows = append(rows, row{"float", "f32", floatLoss, floatDur})
	log.WithFields(logrus.Fields{"val_loss": fmt.Sprintf("%.4f", floatLoss), "ppl": fmt.Sprintf("%.3f", math.Exp(floatLoss))}).Info("float")
	// SmoothQuant statistics: per-channel max |x| at every linear input of the float model.
	stats := map[string][]float64{}
	for i := 0; i < o.calib; i++ {
		x, y := calib(i)
		if _, err := ev.run(x, y); err != nil {
			return nil, err
		}
		ev.net.AccumAbsMax(stats)
	}
	ev.close()
	for _, e := range exps {
		if !e.qat {
			continue
		}
		// QAT trains qat-steps more than the float model: the fair float reference trains as long.
		l, dur, err := continueFloat(lm, o, sampler, valX, valY, log)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{fmt.Sprintf("float, %d more steps (QAT reference)", o.qatSteps), "f32", l, dur})
		break
	}

	var best *graph.LM
	var bestQ *lmQuant
	var bestRotate graph.RotateFunc
	var bestName string
	bestLoss := math.Inf(1)
	for _, e := range exps {
		start := time.Now()
		lq, err := cloneLM(lm)
		if err != nil {
			return nil, err
		}
		if e.smooth {
			if _, err := lq.SmoothQuant(stats, o.alpha); err != nil {
				return nil, err
			}
		}
		var rotate graph.RotateFunc
		if e.rotate {
			rotate = hadamard
		}
		var src *lmQuant // quantizers whose parameters the evaluation graph takes
		var dur time.Duration
		var spun map[uint64][]float64 // learned rotations after QAT
		if e.qat {
			q := newQuant(e.spec, false)
			var rots *learnedRotations
			if e.spin {
				rots = newLearnedRotations(nil)
			}
			tr, err := newTrainRun(e.name, lq, q, rotate, rots, o.batch, sampler, o.wd, log)
			if err != nil {
				return nil, err
			}
			tr.spinLR = o.spinLR
			q.setEnabled(false)
			x, y := calib(0)
			if _, err := tr.forward(x, y); err != nil {
				return nil, err
			}
			if err := q.initLSQ(); err != nil {
				return nil, err
			}
			q.setEnabled(true)
			dur, err = tr.fit(o.qatSteps, o.steps, o.qatLR, max(o.qatSteps/10, 1))
			tr.close()
			if err != nil {
				return nil, err
			}
			src = q
			if rots != nil {
				log.WithFields(logrus.Fields{"run": e.name, "max|RtR-I|": fmt.Sprintf("%.1e", rots.maxOrthogonalityError()),
					"max|R-R0|": fmt.Sprintf("%.3f", rots.maxDrift())}).Info("learned rotations")
				spun = rots.matrices()
				rotate = fixedRotations(spun)
			}
		}
		e2, err := newEvaluator(lq, newQuant(e.spec, true), rotate, o.batch)
		if err != nil {
			return nil, err
		}
		if src != nil {
			if err := e2.quant.copyParams(src); err != nil {
				return nil, err
			}
		} else {
			for i := 0; i < o.calib; i++ { // PTQ: observers see the calibration batches
				x, y := calib(i)
				if _, err := e2.run(x, y); err != nil {
					return nil, err
				}
			}
			e2.quant.freeze()
			dur = time.Since(start)
		}
		l, err := e2.loss(valX, valY)
		e2.close()
		if err != nil {
			return nil, err
		}
		if o.outDir != "" {
			if err := saveQuantized(o, e, lq, e2.quant, spun); err != nil {
				return nil, err
			}
		}
		rows = append(rows, row{e.method(), e.spec.bits(), l, dur})
		log.WithFields(logrus.Fields{"run": e.name, "val_loss": fmt.Sprintf("%.4f", l), "ppl": fmt.Sprintf("%.3f", math.Exp(l)),
			"took": dur.Round(time.Millisecond).String()}).Info("quantized model evaluated")
		if e.spec.wbits < 8 && l < bestLoss {
			bestLoss, best, bestRotate, bestName = l, lq, rotate, e.name
			bestQ = src
			if bestQ == nil {
				bestQ = e2.quant
			}
		}
	}

	fmt.Printf("\ntinyllm: %d-block d=%d %d-head ctx %d byte-level LM (%d params), %d KiB of %s, validation %d tokens\n\n",
		cfg.Layers, cfg.Dim, cfg.Heads, cfg.Ctx, lm.NumParams(), len(corpus.Train)>>10, corpusName(o), len(valX)*o.batch*o.ctx)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tbits\tval loss\tppl\tbits/byte\tvs float\ttime")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.3f\t%.3f\t%+.4f\t%s\n", r.method, r.bits, r.loss, math.Exp(r.loss), r.loss/math.Ln2, r.loss-floatLoss, r.dur.Round(100*time.Millisecond))
	}
	tw.Flush()

	if o.gen > 0 {
		s, err := generate(lm, nil, nil, o.prompt, o.gen, o.temp, o.seed)
		if err != nil {
			return nil, err
		}
		fmt.Printf("\nsample (float, temperature %.2f):\n%s\n", o.temp, s)
		if best != nil {
			s, err := generate(best, bestQ, bestRotate, o.prompt, o.gen, o.temp, o.seed)
			if err != nil {
				return nil, err
			}
			fmt.Printf("\nsample (%s, temperature %.2f):\n%s\n", bestName, o.temp, s)
		}
	}
	return rows, nil
}

// continueFloat trains a copy of lm in float for the QAT schedule (qat-steps at qat-lr, same data
// order as QAT) and returns its validation loss.
func continueFloat(lm *graph.LM, o options, s *text.Sampler, valX, valY [][]int, log *logrus.Logger) (float64, time.Duration, error) {
	lc, err := cloneLM(lm)
	if err != nil {
		return 0, 0, err
	}
	tr, err := newTrainRun("float-continued", lc, nil, nil, nil, o.batch, s, o.wd, log)
	if err != nil {
		return 0, 0, err
	}
	dur, err := tr.fit(o.qatSteps, o.steps, o.qatLR, max(o.qatSteps/10, 1))
	tr.close()
	if err != nil {
		return 0, 0, err
	}
	ev, err := newEvaluator(lc, nil, nil, o.batch)
	if err != nil {
		return 0, 0, err
	}
	defer ev.close()
	l, err := ev.loss(valX, valY)
	return l, dur, err
}

// saveQuantized writes the weights (after SmoothQuant when used) and the quantizer parameters of
// one run to <out>/<run>.ckpt. Hadamard runs record the rotation seed: site s is rotated by
// fakequant.Hadamard with seed rotateSeed ^ fnv64a(s) (graph.LMOptions.RotateSeed); spin runs
// store each learned matrix as "rotation/<seed in hex>".
func saveQuantized(o options, e exp, lm *graph.LM, q *lmQuant, spun map[uint64][]float64) error {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	c := &graph.Checkpoint{Step: int64(o.steps), Seed: o.seed, Meta: map[string]string{
		"run": e.name, "method": e.method(), "bits": e.spec.bits(), "config": fmt.Sprintf("%+v", lm.Config)}}
	if e.rotate {
		c.Meta["hadamard_seed"] = fmt.Sprint(rotateSeed)
	}
	for seed, m := range spun {
		r := make([]float32, len(m))
		for i, v := range m {
			r[i] = float32(v)
		}
		c.PutFloat32s(fmt.Sprintf("rotation/%x", seed), r) // row-major n x n, y = x R
	}
	lm.SaveState(c)
	if err := q.save(c); err != nil {
		return err
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(e.name) + ".ckpt"
	return graph.SaveCheckpoint(filepath.Join(o.outDir, name), c)
}

func corpusName(o options) string {
	if o.data == "" {
		return "Go standard library source"
	}
	return o.data
}
