package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/qatgo/qatgo/data/imagefolder"
	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/data/preprocess"
	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/filekind"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

func exportModelNames() string { return strings.Join(qat.ModelNames(), ", ") }

func init() {
	register(&command{
		name:    "export",
		args:    "CHECKPOINT",
		summary: "lower a QAT checkpoint to an integer model file, with a parity check",
		detail: `Rebuilds the model the checkpoint records (its architecture; older checkpoints: the model
it names; or -model), restores its parameters and quantizer
state (a checkpoint written by qat.Trainer), folds BatchNorm, quantizes weights with the trained
quantizers and writes the integer model (-o) atomically. Unless -parity 0, the fake-quant graph and
the integer runtime first run on MNIST test images and must agree: per layer, the share of elements
within 1 LSB must reach -min-within1 and the predictions must agree on -min-agree of the images;
otherwise nothing is written (unless -force) and the exit status is 1.

Any model built with the library exports; a model whose input is not 28x28 MNIST images with 10
classes is checked on uniform random inputs instead of MNIST. Named models (-model): ` + exportModelNames() + `. The checkpoint records its model and its whole QConfig (overrides
included), used unless -model or -qconfig override them. QConfig presets: w8a8, w4a8, w4a4, w4a4-obs,
w2a2, each optionally with -observed (the observed twin that calibration uses).

A language-model checkpoint (graph.LM, written by qat.Trainer after QAT or Calibrate) exports
to an integer LM file: the runtime's quantization points that training does not model (embedding,
linear and RoPE outputs, KV cache, residual adds) are calibrated on -calib-batches batches of 8
sequences of the text (-text FILE|DIR, default: Go standard library source as examples/tinyllm
uses, capped at -max-bytes), and the parity check runs the fake-quant graph and the integer
runtime on -parity held-out sequences: the greedy next tokens must agree on -min-agree (default
0.95 for an LM) of the positions and the runtime's loss must stay within -max-loss-increase of
the graph's.

-format gguf writes a Llama-architecture language model checkpoint as a GGUF file for llama.cpp
and ollama instead (-type f32, f16, q8_0 or q4_0; see gguf/llama): qatgo export -format gguf CKPT -o
MODEL.gguf -type q8_0.`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			model := fs.String("model", "", "architecture, overriding the checkpoint's model name")
			qconf := fs.String("qconfig", "", "QConfig preset, overriding the QConfig the checkpoint records")
			out := fs.String("o", "", "output model file (default: <model>-<qconfig>.qm)")
			u8 := fs.Bool("uint8", false, "uint8 model input (image bytes, real = byte/255) instead of float32")
			softmax := fs.Bool("softmax", false, "append an integer Softmax to the output")
			requant := fs.String("requant", qmodel.RequantDefault, "requantization rule of the .qm: default (Q31 multipliers, the integer contract) or onnxruntime (the integers onnxruntime's int8 kernels compute on the -format onnx export, bit for bit; Conv, dense, Add, MaxPool models)")
			parity := fs.Int("parity", 1000, "MNIST test images for the parity check (0: skip it)")
			dir := fs.String("dir", "", "directory with the MNIST idx files (default: locate GoMNIST)")
			data := fs.String("data", "", "labelled data for PTQ calibration (when the checkpoint has no quantizer state) and the parity check: mnist, fashion or a folder of idx files (overrides -dir)")
			calib := fs.Int("calib-batches", 16, "PTQ calibration batches of 64 training images")
			minW1 := fs.Float64("min-within1", export.DefaultThresholds.MinWithin1, "minimum share of elements within 1 LSB per layer (0: no check)")
			minAgree := fs.Float64("min-agree", export.DefaultThresholds.MinAgreement, "minimum share of agreeing predictions (0: no check)")
			maxLSB := fs.Int("max-lsb", 0, "largest allowed difference in LSB anywhere (0: no limit)")
			maxLocal := fs.Int("max-local-lsb", 0, "largest allowed difference of a layer alone, on the fake-quant inputs (0: no limit)")
			maxDrop := fs.Float64("max-acc-drop", export.DefaultThresholds.MaxAccuracyDrop, "largest drop of the fake-quant accuracy below the float accuracy on the labelled parity images, as a share (0: no check)")
			force := fs.Bool("force", false, "write the model even when the parity check or the plausibility checks (weights, ranges, accuracy) fail")
			textPath := fs.String("text", "", "language models: text file or folder for calibration and the parity check (default: a subset of $(go env GOROOT)/src, as examples/tinyllm)")
			maxBytes := fs.Int("max-bytes", 1<<20, "language models: cap on the text read, in bytes")
			maxLossInc := fs.Float64("max-loss-increase", export.DefaultLMThresholds.MaxLossIncrease, "language models: largest relative increase of the runtime's loss over the fake-quant graph's (0: no check)")
			ggufExport := ggufFlags(fs) // -format gguf, -type: export_gguf.go
			return func(e *env, args []string) error {
				if done, err := ggufExport(e, args, *out); done {
					return err
				}
				if err := needArgs(args, "CHECKPOINT"); err != nil {
					return err
				}
				if *parity < 0 {
					return usagef("-parity must be >= 0, got %d", *parity)
				}
				if !(*minW1 >= 0 && *minW1 <= 1) || !(*minAgree >= 0 && *minAgree <= 1) { // NaN fails too
					return usagef("-min-within1 and -min-agree must be in [0,1]")
				}
				if !(*maxDrop >= 0 && *maxDrop <= 1) {
					return usagef("-max-acc-drop must be in [0,1], got %v", *maxDrop)
				}
				if *maxDrop == 0 {
					*maxDrop = -1
				}
				if *maxLSB < 0 || *maxLocal < 0 {
					return usagef("-max-lsb and -max-local-lsb must be >= 0")
				}
				// export.Thresholds reads a zero share as "the default"; here 0 means what the
				// user wrote: no check, which Thresholds spells as a negative share.
				for _, v := range []*float64{minW1, minAgree} {
					if *v == 0 {
						*v = -1
					}
				}
				if *calib < 1 {
					return usagef("-calib-batches must be >= 1, got %d", *calib)
				}
				folder := false
				if *data != "" {
					if folder = imagefolder.IsImageFolder(*data); folder {
						*dir = *data
					} else {
						d, err := mnist.DataDir(*data)
						if err != nil {
							return usagef("-data: %v (or a folder with one sub-folder of images per class)", err)
						}
						*dir = d
					}
				}
				if *requant != qmodel.RequantDefault && *requant != qmodel.RequantOnnxruntime {
					return usagef("-requant must be %s or %s, got %q", qmodel.RequantDefault, qmodel.RequantOnnxruntime, *requant)
				}
				onnxOut := strings.EqualFold(fs.Lookup("format").Value.String(), "onnx")
				set := map[string]bool{}
				fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
				if *maxLossInc == 0 {
					*maxLossInc = -1
				}
				return runExport(e, exportArgs{ckpt: args[0], data: *data, folder: folder, calib: *calib, onnx: onnxOut, model: *model, qconfig: *qconf, out: *out, uint8: *u8,
					softmax: *softmax, requant: *requant, parity: *parity, dir: *dir, force: *force,
					text: *textPath, maxBytes: *maxBytes, maxLossInc: *maxLossInc, agreeSet: set["min-agree"], within1Set: set["min-within1"],
					th: export.Thresholds{MinWithin1: *minW1, MinAgreement: *minAgree, MaxLSB: *maxLSB, MaxLocalLSB: *maxLocal, MaxAccuracyDrop: *maxDrop}})
			}
		},
	})
}

type exportArgs struct {
	ckpt, model, qconfig, out, dir string
	requant                        string // qmodel.MetaRequant of the .qm
	data                           string // -data as given ("" unless set); dir is resolved from it
	folder                         bool   // dir is a folder of labelled images (data/imagefolder)
	calib                          int
	onnx                           bool // write the integer model as QDQ ONNX instead of a .qm
	uint8, softmax, force          bool
	parity                         int
	th                             export.Thresholds
	// language models
	text                 string
	maxBytes             int
	maxLossInc           float64
	agreeSet, within1Set bool // -min-agree, -min-within1 given
}

func runExport(e *env, a exportArgs) error {
	ck, err := loadCheckpoint(a.ckpt)
	if err != nil {
		return err
	}
	if isLMCheckpoint(ck) {
		return runExportLM(e, ck, a)
	}
	m, err := exportModel(ck, a.model)
	if err != nil {
		return err
	}
	a.model = m.Name
	var qc qat.QConfig
	_, noState := qat.CheckpointQConfig(ck)
	calibrate := noState != nil && a.data != ""
	if a.qconfig == "" && calibrate {
		qc, _ = qat.Preset("w8a8")
	} else if a.qconfig == "" {
		if qc, err = qat.CheckpointQConfig(ck); err != nil {
			return usagef("%v: train with QAT or calibrate first (or pass -data to calibrate here), or pass -qconfig", err)
		}
	} else if qc, err = qat.Preset(a.qconfig); err != nil {
		return usagef("%v", err)
	} else if rec, err := qat.CheckpointQConfig(ck); err == nil && rec.Name != qc.Name {
		// The restore rejects quantizer state of another method, but observer ranges of
		// another bit width are accepted: say so.
		fmt.Fprintf(e.stderr, "qatgo export: warning: the checkpoint was trained with QConfig %s, exporting with %s\n", rec.Name, qc.Name)
	}
	if a.out == "" {
		a.out = strings.ToLower(a.model + "-" + qc.Name + ".qm")
		if a.onnx {
			a.out = strings.TrimSuffix(a.out, ".qm") + ".onnx"
		}
	}
	opt := export.Options{Softmax: a.softmax || ck.Meta[MetaONNXSoftmax] == "true", Meta: map[string]string{"checkpoint": filepath.Base(a.ckpt), "qconfig": qc.Name}}
	if a.requant != "" && a.requant != qmodel.RequantDefault {
		opt.Meta[qmodel.MetaRequant] = a.requant
	}
	// How images become the model's input: its input shape and the normalisation the checkpoint
	// records (input.mean/input.std), copied into the integer model's metadata.
	spec, specErr := preprocess.FromMeta(ck.Meta, m.Input, false)
	if specErr == nil {
		spec.SetMeta(opt.Meta)
	} else if ck.Meta[preprocess.MetaMean] != "" || ck.Meta[preprocess.MetaStd] != "" {
		return fmt.Errorf("%s: %w", a.ckpt, specErr)
	}
	if mnistShaped(m) {
		opt.Labels = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
		if a.data == "fashion" || a.data == "fashion-mnist" {
			opt.Labels = mnist.FashionLabels
		}
	}
	var folderSet *preprocess.Set
	if a.folder && (calibrate || a.parity > 0) {
		if specErr != nil {
			return fmt.Errorf("-data %s: %w", a.dir, specErr)
		}
		var classes []string
		if folderSet, classes, err = imagefolder.Load(a.dir, spec); err != nil {
			return err
		}
		if out := m.OutShape(); len(out) == 1 && out[0] == len(classes) {
			opt.Labels = classes
		}
	}
	if a.uint8 {
		if !spec.Identity() {
			return usagef("-uint8: the checkpoint normalises its input (%v); a uint8 input carries only byte/255", spec)
		}
		opt.Uint8Input = &quant.Params{Scale: 1.0 / 255}
	}
	var p *qat.Prepared
	if calibrate {
		var train qat.Dataset = folderSet
		if folderSet == nil {
			if specErr != nil {
				return fmt.Errorf("%s: %w", a.ckpt, specErr)
			}
			idx, err := mnist.LoadTrain(a.dir)
			if err != nil {
				return err
			}
			if train, err = preprocess.FromMNIST(idx, spec); err != nil {
				return fmt.Errorf("%s: %w", a.ckpt, err)
			}
		}
		if p, err = calibrateCheckpoint(e, ck, m, qc, train, a.dir, a.calib); err != nil {
			return fmt.Errorf("%s: %w", a.ckpt, err)
		}
	} else if p, err = export.PrepareCheckpoint(ck, m, qc); err != nil {
		return fmt.Errorf("%s: %w", a.ckpt, err)
	}
	if err := export.CheckPlausible(p); err != nil {
		if !a.force {
			return fmt.Errorf("%s: %w; nothing written (use -force to write anyway)", a.ckpt, err)
		}
		fmt.Fprintf(e.stderr, "qatgo export: warning: %v (writing anyway: -force)\n", err)
	}
	qm, err := export.Lower(p, opt)
	if err != nil {
		return err
	}
	var parityErr error
	if a.parity > 0 {
		var rep *export.Report
		if folderSet != nil || (specErr == nil && mnistShaped(m)) {
			x, y, err := parityImages(folderSet, a.dir, spec, a.parity)
			if err != nil {
				return err
			}
			if rep, err = export.ParityLabeled(p, qm, x, len(y), y); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(e.stderr, "qatgo export: input %v is not MNIST-shaped: parity check on %d uniform random inputs in [0,1)\n", m.Input, a.parity)
			if rep, err = export.Parity(p, qm, uniformInputs(m.Input, a.parity), a.parity); err != nil {
				return err
			}
		}
		fmt.Fprint(e.stdout, rep)
		if parityErr = rep.Check(a.th); parityErr != nil && !a.force {
			return fmt.Errorf("%w; nothing written (use -force to write anyway, or relax -min-within1/-min-agree/-max-acc-drop)", parityErr)
		}
	}
	if a.onnx {
		mp, err := onnx.FromQModel(qm)
		if err != nil {
			return err
		}
		if err := onnx.WriteFile(a.out, mp); err != nil {
			return err
		}
	} else if err := qmodel.WriteFile(a.out, qm); err != nil {
		return err
	}
	fi, err := os.Stat(a.out)
	if err != nil {
		return err
	}
	var floatBytes int
	for _, g := range p.Model.Groups() {
		if g.Weighted() {
			f, err := export.Fold(p.Model, g)
			if err != nil {
				return err
			}
			floatBytes += 4 * (len(f.Weight) + len(f.Bias))
		}
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d bytes (%d ops; folded float32 parameters %d bytes, %.2fx larger)\n",
		a.out, fi.Size(), len(qm.Ops), floatBytes, float64(floatBytes)/float64(fi.Size()))
	if parityErr != nil {
		return fmt.Errorf("%w (written anyway: -force)", parityErr)
	}
	return nil
}

// exportModel returns the model of a checkpoint: the named architecture when name is set (a
// -model override), else the architecture the checkpoint records (graph.FromCheckpoint: any model
// built with the library), else, for checkpoints written before they recorded it, the named
// model of package qat the checkpoint names.
func exportModel(ck *graph.Checkpoint, name string) (*graph.Model, error) {
	if name == "" {
		n, err := graph.FromCheckpoint(ck)
		switch {
		case err == nil:
			m, ok := n.(*graph.Model)
			if !ok {
				return nil, fmt.Errorf("the checkpoint holds a %s model (%q): its export to the integer runtime is not supported yet", n.Arch().Type, n.Arch().Name)
			}
			return m, nil
		case !errors.Is(err, graph.ErrNoArch):
			return nil, err
		}
		if name = ck.Meta[qat.MetaModel]; name == "" {
			return nil, usagef("the checkpoint records neither its architecture nor its model name: pass -model (%s)", exportModelNames())
		}
	}
	m, err := qat.NewModel(name, 1)
	if err != nil {
		return nil, usagef("unknown model %q (known: %s)", name, exportModelNames())
	}
	return m, nil
}

// mnistShaped reports whether m reads 28x28 grey images and gives 10 class scores.
func mnistShaped(m *graph.Model) bool {
	return slices.Equal(m.Input, []int{1, 28, 28}) && slices.Equal(m.OutShape(), []int{10})
}

// uniformInputs returns n deterministic pseudo-random examples of the per-example shape, uniform
// in [0,1).
func uniformInputs(shape []int, n int) []float32 {
	per := 1
	for _, d := range shape {
		per *= d
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*per)
	for i := range x {
		x[i] = rng.Float32()
	}
	return x
}

// parityImages returns the first n images of set (the -data image folder), or else of the idx
// test set in dir (MNIST by default), normalised as spec says (NCHW), with their labels.
func parityImages(set *preprocess.Set, dir string, spec preprocess.Spec, n int) ([]float32, []int, error) {
	if set == nil {
		test, err := mnistTestSet(dir, n)
		if err != nil {
			return nil, nil, err
		}
		if set, err = preprocess.FromMNIST(test, spec); err != nil {
			return nil, nil, err
		}
	}
	set = set.Subset(n)
	idx := make([]int, set.Len())
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, len(idx)*spec.Size())
	y := make([]int, len(idx))
	set.Batch(idx, x, y)
	return x, y, nil
}

// calibrateCheckpoint loads the float parameters of ck into m and runs PTQ calibration with qc on
// batches of 64 examples of train (from dir).
func calibrateCheckpoint(e *env, ck *graph.Checkpoint, m *graph.Model, qc qat.QConfig, train qat.Dataset, dir string, batches int) (*qat.Prepared, error) {
	if err := m.LoadState(ck); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "qatgo export: no quantizer state in the checkpoint: PTQ calibration (%s) on %d x 64 training images from %s\n", qc.Name, batches, dir)
	return qat.Calibrate(m, qc, train, batches, 64, 1)
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// loadCheckpoint reads the checkpoint export starts from. When the file is of another format it
// adds which command reads that format (a GGUF or ONNX model: qatgo import; a .qm: eval, run).
func loadCheckpoint(path string) (*graph.Checkpoint, error) {
	ck, err := graph.LoadCheckpoint(path)
	if err == nil || !errors.Is(err, graph.ErrCheckpoint) {
		return ck, err
	}
	head := make([]byte, 16)
	if f, ferr := os.Open(path); ferr == nil {
		n, _ := io.ReadFull(f, head)
		head = head[:n]
		f.Close()
	}
	switch kind := filekind.Detect(head); {
	case kind == filekind.GGUF:
		return nil, fmt.Errorf("%w; qatgo import %s -o CKPT converts it into one", err, path)
	case kind == filekind.ONNX || strings.EqualFold(filepath.Ext(path), ".onnx"):
		return nil, fmt.Errorf("%w; qatgo import %s -o CKPT converts an ONNX model into one", err, path)
	case kind == filekind.QModel:
		return nil, fmt.Errorf("%w; it is already exported: qatgo eval, run and inspect read it", err)
	}
	return nil, err
}
