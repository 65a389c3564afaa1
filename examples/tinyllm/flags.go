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
	"github.com/qatgo/qatgo/internal/flagcheck"

	"github.com/qatgo/qatgo/qat"
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
	fs.Float64Var(&o.spinLR, "spin-lr", 5e-4, "peak Adam learning rate of the learned rotations' Cayley parameters (spin runs)")
	fs.StringVar(&o.runs, "runs", "ptq:w8a8,ptq:w4a8,ptq:w4a8:gptq,ptq:w4a8:smooth,ptq:w4a8:hadamard,ptq:w3a8,ptq:w3a8:gptq,ptq:w4a4,ptq:w4a4:smooth,ptq:w4a4:hadamard,ptq:w4a4:quarot,qat:w8a8,qat:w4a8,qat:w4a8:hadamard,qat:w3a8,qat:w4a4:hadamard,qat:w4a4:spin", "quantized runs, see the command doc")
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
	if o.quick { // smaller sizes for the flags not given explicitly
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, q := range []struct {
			name string
			dst  *int
			v    int
		}{{"max-bytes", &o.maxBytes, 1 << 20}, {"steps", &o.steps, 200}, {"qat-steps", &o.qatSteps, 50},
			{"eval-batches", &o.evalBatches, 6}, {"calib", &o.calib, 4}, {"gen", &o.gen, 120}} {
			if !set[q.name] {
				*q.dst = q.v
			}
		}
		if !set["runs"] {
			o.runs = "ptq:w8a8,ptq:w4a8,ptq:w4a4:smooth,ptq:w4a4:hadamard,ptq:w4a4:quarot,qat:w4a8:hadamard,qat:w4a4:spin"
		}
	}
	if err := flagcheck.NoArgs(fs.Args()); err != nil {
		return o, err
	}
	return o, o.validate()
}

// validate checks every flag value before any work (issue 14: no value silently reinterpreted).
func (o *options) validate() error {
	err := flagcheck.First(
		flagcheck.AtLeast("max-bytes", o.maxBytes, 1),
		flagcheck.AtLeast("dim", o.dim, 1),
		flagcheck.AtLeast("layers", o.layers, 1),
		flagcheck.AtLeast("heads", o.heads, 1),
		flagcheck.AtLeast("hidden", o.hidden, 1),
		flagcheck.AtLeast("ctx", o.ctx, 2),
		flagcheck.AtLeast("batch", o.batch, 1),
		flagcheck.AtLeast("steps", o.steps, 1),
		flagcheck.AtLeast("qat-steps", o.qatSteps, 1),
		flagcheck.Positive("lr", o.lr),
		flagcheck.Positive("qat-lr", o.qatLR),
		flagcheck.NonNegative("wd", o.wd),
		flagcheck.AtLeast("eval-batches", o.evalBatches, 1),
		flagcheck.AtLeast("calib", o.calib, 1),
		flagcheck.AtLeast("group", o.group, 0),
		flagcheck.Between("head-bits", o.headBits, 2, 8),
		flagcheck.Within("alpha", o.alpha, 0, 1),
		flagcheck.Positive("spin-lr", o.spinLR),
		flagcheck.AtLeast("gen", o.gen, 0),
		flagcheck.NonNegative("temp", o.temp),
	)
	if err != nil {
		return err
	}
	if o.dim%o.heads != 0 {
		return fmt.Errorf("-heads %d does not divide -dim %d", o.heads, o.dim)
	}
	_, err = parseRuns(o.runs, *o)
	return err
}

type exp struct {
	name           string
	qat            bool
	recipe         qat.LMRecipe
	smooth, rotate bool
	quarot         bool // QuaRot's rotations folded into the weights
	spin           bool // learned rotations (QAT only), folded after training
	gptq           bool // GPTQ weights (PTQ only)
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
			return nil, fmt.Errorf("run %q: want ptq|qat:wXaY[:smooth][:gptq][:hadamard|:quarot|:spin][:kv8|:kv4]", r)
		}
		e := exp{name: r, qat: f[0] == "qat", recipe: qat.LMRecipe{Group: o.group, HeadBits: o.headBits}}
		if _, err := fmt.Sscanf(f[1], "w%da%d", &e.recipe.WBits, &e.recipe.ABits); err != nil {
			return nil, fmt.Errorf("run %q: bits %q: %v", r, f[1], err)
		}
		for _, x := range f[2:] {
			switch x {
			case "smooth":
				e.smooth = true
			case "hadamard":
				e.rotate = true
			case "quarot":
				e.quarot = true
			case "spin":
				e.spin = true
			case "gptq":
				e.gptq = true
			case "kv8", "kv4":
				e.recipe.KVBits = int(x[2] - '0')
			default:
				return nil, fmt.Errorf("run %q: unknown option %q", r, x)
			}
		}
		if e.gptq && (e.qat || e.recipe.WBits >= 8) {
			return nil, fmt.Errorf("run %q: gptq is for ptq runs below 8 bits", r)
		}
		if e.spin && !e.qat {
			return nil, fmt.Errorf("run %q: spin (learned rotations) is for qat runs", r)
		}
		if n := btoi(e.rotate) + btoi(e.quarot) + btoi(e.spin); n > 1 {
			return nil, fmt.Errorf("run %q: hadamard, quarot and spin exclude each other", r)
		}
		e.recipe.LearnW = e.qat && e.recipe.WBits < 8
		e.recipe.LearnA = e.qat && e.recipe.ABits < 8
		if e.qat {
			e.recipe.ActMomentum = 0.05
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
		case e.recipe.LearnW && e.recipe.LearnA:
			m += " (LSQ w, LSQ+ a)"
		case e.recipe.LearnW:
			m += " (LSQ w)"
		}
	}
	if e.gptq {
		m += " + GPTQ"
	}
	if e.smooth {
		m += " + SmoothQuant"
	}
	if e.rotate {
		m += " + Hadamard"
	}
	if e.quarot {
		m += " + QuaRot (folded)"
	}
	if e.spin {
		m += " + learned rotations (folded)"
	}
	return m
}

// data is the corpus, the training sampler, the validation windows and the calibration batches
// (drawn from the sampler at steps disjoint from training).
type data struct {
	corpus                 *text.Corpus
	sampler                *text.Sampler
	valX, valY, calX, calY [][]int
}

func loadData(o options) (*data, error) {
	topts := text.Options{MaxBytes: o.maxBytes}
	var corpus *text.Corpus
	var err error
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
	d := &data{corpus: corpus}
	if d.sampler, err = text.NewSampler(trainTok, o.batch, o.ctx, o.seed); err != nil {
		return nil, err
	}
	d.valX, d.valY = text.Windows(valTok, o.batch, o.ctx, o.evalBatches)
	if len(d.valX) == 0 {
		return nil, fmt.Errorf("validation text (%d bytes) is shorter than one batch", len(valTok))
	}
	for i := 0; i < o.calib; i++ {
		x, y := d.sampler.Next(int64(1)<<40 + int64(i))
		d.calX, d.calY = append(d.calX, x), append(d.calY, y)
	}
	return d, nil
}

func printTable(rows []row, floatLoss float64) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tbits\tval loss\tppl\tbits/byte\tvs float\ttime")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.3f\t%.3f\t%+.4f\t%s\n", r.method, r.bits, r.loss, math.Exp(r.loss), r.loss/math.Ln2, r.loss-floatLoss, r.dur.Round(100*time.Millisecond))
	}
	tw.Flush()
}

func corpusName(o options) string {
	if o.data == "" {
		return "Go standard library source"
	}
	return o.data
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
