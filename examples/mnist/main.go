// Command mnist trains a CNN on the real MNIST data (shipped in the GoMNIST Go module, no
// download step) in float, quantizes it after training (PTQ) and with quantization-aware training
// (QAT) from the float checkpoint, and prints a comparison table:
//
//	go run ./examples/mnist            # defaults: BN CNN, see -h
//	go run ./examples/mnist -quick     # a few minutes' smoke run on subsets
//
// It writes checkpoints, a CSV/Markdown table and training-curve PNG to -out (default ./out).
// With -onnx it also writes the float model as ONNX and every PTQ/QAT model as a .qm and as QDQ
// ONNX, and adds a table of their accuracies in qatgo's integer runtime and in onnxruntime:
//
//	go run ./examples/dsnet -o dsnet.onnx
//	go run ./examples/mnist -model onnx:dsnet.onnx -data fashion -onnx
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qatgo/qatgo/convop"
	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/fastblas"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/atomicfile"
	"github.com/qatgo/qatgo/internal/flagcheck"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/sirupsen/logrus"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	G "gorgonia.org/gorgonia"
)

type options struct {
	model       string
	data        string
	epochs      int
	qatEpochs   int
	bits        string
	out         string
	quick       bool
	trainLimit  int
	testLimit   int
	batch       int
	lr, qatLR   float64
	seed        uint64
	calib       int
	useFastBLAS bool
	dataDir     string
	noExport    bool
	from        string
	resume      bool
	conv        string
	onnx        bool
	requant     string
}

type row struct {
	model, bits, method string
	acc                 float64
	size                int
	train               time.Duration
}

type curve struct {
	name   string
	offset float64 // epochs before this run (QAT starts after float)
	t      *qat.Trainer
	start  *plotter.XY // accuracy the run starts from (the float model's)
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "mnist:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mnist:", err)
		os.Exit(1)
	}
}

// parseFlags parses and checks the command line (validate).
func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("mnist", flag.ContinueOnError)
	fs.StringVar(&o.model, "model", "bn", "model: bn (CNN with BatchNorm), ggml (ggml's MNIST CNN) or onnx:FILE (a float ONNX model, imported; its weights are the starting point)")
	fs.StringVar(&o.data, "data", "", "dataset: mnist (default), fashion (Fashion-MNIST, apt-get install dataset-fashion-mnist) or a folder of idx files")
	fs.IntVar(&o.epochs, "epochs", 0, "float training epochs (default 3 for bn, 4 for ggml; 1 with -quick)")
	fs.IntVar(&o.qatEpochs, "qat-epochs", 1, "QAT epochs per bit width")
	fs.StringVar(&o.bits, "bits", "8,4", "comma-separated weight/activation bit widths for PTQ and QAT (8: W8A8 observers, 4: W4A4 LSQ, 2: W2A2 LSQ)")
	fs.StringVar(&o.out, "out", "out", "output directory (checkpoints, results, curves)")
	fs.BoolVar(&o.quick, "quick", false, "quick run on subsets (a few minutes on 2 cores)")
	fs.IntVar(&o.trainLimit, "train-limit", 0, "use only the first n training images (0: all 60000)")
	fs.IntVar(&o.testLimit, "test-limit", 0, "evaluate on the first n test images (0: all 10000)")
	fs.IntVar(&o.batch, "batch", 64, "mini-batch size")
	fs.Float64Var(&o.lr, "lr", 2e-3, "float learning rate (Adam, cosine)")
	fs.Float64Var(&o.qatLR, "qat-lr", 2e-4, "QAT learning rate (Adam, cosine)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for initialisation, data order and calibration sample")
	fs.IntVar(&o.calib, "calib", 16, "PTQ calibration batches")
	fs.BoolVar(&o.useFastBLAS, "fastblas", true, "use qatgo's SIMD Sgemm (fastblas) instead of gonum's for Gorgonia")
	fs.StringVar(&o.dataDir, "mnist", "", "directory with the MNIST idx files (default: $QATGO_MNIST_DIR or the GoMNIST module)")
	fs.BoolVar(&o.noExport, "no-export", false, "skip exporting the W8A8 QAT model to the integer runtime")
	fs.StringVar(&o.from, "from", "", "load the float model from this checkpoint instead of training it")
	fs.StringVar(&o.conv, "conv", "convop", "convolution, max-pool and ReLU ops: convop (qatgo's SIMD ops) or gorgonia")
	fs.BoolVar(&o.resume, "resume", false, "with -from: train a checkpoint that has fewer than -epochs epochs to the end (without it, such a checkpoint is refused)")
	fs.BoolVar(&o.onnx, "onnx", false, "also export the float model to ONNX and every PTQ/QAT model to a .qm and QDQ ONNX (in -out) and measure qatgo's integer runtime and onnxruntime on them (needs node and onnxruntime-node, see package onnx/ort)")
	fs.StringVar(&o.requant, "requant", qmodel.RequantDefault, "with -onnx: requantization rule of the .qm files: default or onnxruntime (bit-exact with onnxruntime's int8 kernels)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := flagcheck.NoArgs(fs.Args()); err != nil {
		return o, err
	}
	return o, o.validate()
}

func run(o options) error {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	if o.quick {
		if o.trainLimit == 0 {
			o.trainLimit = 12000
		}
		if o.testLimit == 0 {
			o.testLimit = 2000
		}
		if o.epochs == 0 {
			o.epochs = 1
		}
		o.calib = min(o.calib, 8)
	}
	if o.epochs == 0 {
		o.epochs = 3
		if o.model == "ggml" {
			o.epochs = 4
		}
	}
	if o.useFastBLAS {
		defer fastblas.Install()()
	}
	switch o.conv {
	case "convop":
		graph.Conv2dImpl = func(x, w *G.Node, pad, stride int) (*G.Node, error) {
			return convop.Conv2d(x, w, []int{pad, pad}, []int{stride, stride})
		}
		graph.MaxPool2DImpl = convop.MaxPool2D
		graph.ReLUImpl = convop.ReLU
	case "gorgonia":
	default:
		return fmt.Errorf("-conv %q: want convop or gorgonia", o.conv)
	}
	bits, err := parseBits(o.bits)
	if err != nil {
		return err
	}
	var mk func(uint64) *graph.Model
	switch {
	case strings.HasPrefix(o.model, "onnx:"):
		im, _, err := onnx.ImportFile(strings.TrimPrefix(o.model, "onnx:"))
		if err != nil {
			return err
		}
		mk = func(uint64) *graph.Model { return im }
		o.model = im.Name
	default:
		if err := namedModel(o.model, &mk); err != nil {
			return err
		}
	}
	if o.data != "" {
		d, err := mnist.DataDir(o.data)
		if err != nil {
			return err
		}
		o.dataDir = d
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	train, test, err := mnist.Load(o.dataDir)
	if err != nil {
		return err
	}
	train, test = train.Subset(o.trainLimit), test.Subset(o.testLimit)
	if o.batch > train.Len() {
		return fmt.Errorf("-batch %d is more than the %d training images: not one mini-batch per epoch", o.batch, train.Len())
	}
	log.WithFields(logrus.Fields{"conv": o.conv, "fastblas": o.useFastBLAS, "model": o.model, "train": train.Len(), "test": test.Len(), "epochs": o.epochs,
		"qat_epochs": o.qatEpochs, "bits": o.bits}).Info("start")
	startAll := time.Now()

	// 1. float training
	m := mk(o.seed)
	testSet := qat.Images{Data: test}
	ft, err := qat.NewTrainer(qat.Classify(m, train), nil, qat.Config{Epochs: o.epochs, BatchSize: o.batch, LR: o.lr, Schedule: qat.CosineLR,
		MinLR: o.lr / 50, Seed: o.seed, CheckpointDir: filepath.Join(o.out, o.model+"-float"), Logger: log})
	if err != nil {
		return err
	}
	st := time.Now()
	if o.from != "" {
		if err := ft.LoadCheckpoint(o.from); err != nil {
			return err
		}
		if ft.Epoch < o.epochs {
			if !o.resume {
				return unfinishedError(o.from, ft.Epoch, o.epochs)
			}
			log.WithFields(logrus.Fields{"checkpoint": o.from, "epochs_done": ft.Epoch, "epochs": o.epochs}).Info("resuming the unfinished float checkpoint")
			if err := ft.Fit(testSet); err != nil {
				return err
			}
		}
		fm, err := ft.Evaluate(testSet)
		if err != nil {
			return err
		}
		acc := fm.Acc
		if len(ft.History) == 0 {
			ft.History = []qat.EpochStats{{Epoch: ft.Epoch}}
		}
		ft.History[len(ft.History)-1].TestAcc = acc
		log.WithFields(logrus.Fields{"checkpoint": o.from, "test_acc": fmt.Sprintf("%.4f", acc)}).Info("float model loaded")
	} else if err := ft.Fit(testSet); err != nil {
		return err
	}
	ft.Close()
	floatTime := time.Since(st)
	floatAcc := ft.History[len(ft.History)-1].TestAcc
	rows := []row{{o.model, "fp32", "float", floatAcc, modelSize(m, nil), floatTime}}
	curves := []curve{{name: "float", t: ft}}
	var floatState graph.Checkpoint
	m.SaveState(&floatState)
	var oc *ortCheck
	if o.onnx {
		if oc, err = newORTCheck(o, m, test); err != nil {
			return err
		}
		if err := oc.float(m, floatAcc); err != nil {
			return err
		}
	}

	for _, b := range bits {
		// 2. PTQ: observers on calibration batches, no training
		ptqCfg := qat.W8A8()
		if b != 8 {
			ptqCfg = qat.QConfig{Name: fmt.Sprintf("W%dA%d", b, b), Weight: qat.Spec{Bits: b}, Act: qat.Spec{Bits: b}}
		}
		if b == 2 { // as the QAT run: first and last layers at 8 bits
			ptqCfg = ptqCfg.FirstLast8(m)
		}
		st = time.Now()
		p, err := qat.Calibrate(m, ptqCfg, train, o.calib, o.batch, o.seed)
		if err != nil {
			return err
		}
		acc, _, err := qat.Evaluate(m, p, test, 500)
		if err != nil {
			return err
		}
		rows = append(rows, row{o.model, fmt.Sprintf("W%dA%d", b, b), "PTQ", acc, modelSize(m, &ptqCfg), time.Since(st)})
		log.WithFields(logrus.Fields{"bits": b, "acc": fmt.Sprintf("%.4f", acc)}).Info("PTQ done")
		if oc != nil {
			if err := oc.quantized(p, fmt.Sprintf("%s-ptq-w%da%d", o.model, b, b), fmt.Sprintf("W%dA%d", b, b), "PTQ", acc); err != nil {
				return err
			}
		}

		// 3. QAT from the float checkpoint
		if err := m.LoadState(&floatState); err != nil {
			return err
		}
		qc := qat.W8A8()
		method := "QAT (observers)"
		switch b {
		case 4:
			qc, method = qat.W4A4LSQ(), "QAT (LSQ)"
		case 2:
			qc, method = qat.W2A2().FirstLast8(m), "QAT (LSQ, first/last 8-bit)"
		}
		p, err = qat.Prepare(m, qc)
		if err != nil {
			return err
		}
		spe := int64(train.Len() / o.batch)
		total := spe * int64(o.qatEpochs)
		qt, err := qat.NewTrainer(qat.Classify(m, train), p, qat.Config{Epochs: o.qatEpochs, BatchSize: o.batch, LR: o.qatLR, Schedule: qat.CosineLR,
			MinLR: o.qatLR / 20, Seed: o.seed + uint64(b), BNFreeze: total * 6 / 10, ObserverFreeze: total * 8 / 10,
			CheckpointDir: filepath.Join(o.out, fmt.Sprintf("%s-qat-w%da%d", o.model, b, b)), Logger: log})
		if err != nil {
			return err
		}
		st = time.Now()
		if err := qt.Fit(testSet); err != nil {
			return err
		}
		qt.Close()
		acc = qt.History[len(qt.History)-1].TestAcc
		rows = append(rows, row{o.model, fmt.Sprintf("W%dA%d", b, b), method, acc, modelSize(m, &qc), time.Since(st)})
		curves = append(curves, curve{name: fmt.Sprintf("QAT W%dA%d", b, b), offset: float64(o.epochs), t: qt,
			start: &plotter.XY{X: float64(o.epochs), Y: 100 * floatAcc}})
		if oc != nil {
			if err := oc.quantized(p, fmt.Sprintf("%s-qat-w%da%d", o.model, b, b), fmt.Sprintf("W%dA%d", b, b), method, acc); err != nil {
				return err
			}
		}

		// ---- EXPORT ---------------------------------------------------------------------------
		// The int8 model is lowered to the integer runtime (package export walks the model spec:
		// m.Groups, m.Sites and p.Params), parity-checked against the fake-quant graph, written
		// to -out and evaluated with the integer-only interpreter (package infer).
		if b == 8 && !o.noExport {
			r, err := exportAndRun(o, m, p, test, log)
			if err != nil {
				log.WithError(err).Warn("export failed; the table has no int8 runtime row")
			} else {
				rows = append(rows, r)
			}
		}
		// ------------------------------------------------------------------------------------------

		if err := m.LoadState(&floatState); err != nil { // next bit width starts from float again
			return err
		}
	}

	var tab bytes.Buffer
	fmt.Fprintf(&tab, "| model | bits | method | test accuracy | model size | training time |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		t := "-"
		if r.train > 0 {
			t = r.train.Round(time.Second).String()
		}
		fmt.Fprintf(&tab, "| %s | %s | %s | %.2f%% | %s | %s |\n", r.model, r.bits, r.method, 100*r.acc, kb(r.size), t)
	}
	if oc != nil {
		tab.WriteString(oc.table(o.model))
	}
	fmt.Fprintf(&tab, "\ntrain images %d, test images %d, float epochs %d, QAT epochs %d, total %s\n",
		train.Len(), test.Len(), o.epochs, o.qatEpochs, time.Since(startAll).Round(time.Second))
	fmt.Print(tab.String())
	if err := atomicfile.Write(filepath.Join(o.out, o.model+"-results.md"), tab.Bytes()); err != nil {
		return err
	}
	png := filepath.Join(o.out, o.model+"-curves.png")
	if err := plotCurves(png, curves); err != nil {
		return err
	}
	fmt.Println("curves:", png)
	return nil
}

// modelSize estimates the exported payload: BN folded, weights at their configured bit width
// (packed), int32 biases, float32 per-channel scales; activation parameters (scale + zero point)
// per quantized activation site. With c == nil (float) weights and biases are float32.
func modelSize(m *graph.Model, c *qat.QConfig) int {
	n := 0
	for _, s := range m.Sites() {
		if s.Kind != graph.SiteWeight {
			if c != nil && c.Bits(m, s) > 0 {
				n += 8
			}
			continue
		}
		w := m.LayerParam(s.Group, graph.RoleWeight).Value.Shape()
		out, nw := w[0], w.TotalSize()
		bits := 32
		if c != nil {
			bits = c.Bits(m, s)
		}
		if bits == 0 || bits == 32 {
			n += 4*nw + 4*out
			continue
		}
		n += (nw*bits+7)/8 + 4*out + 4*out
	}
	return n
}

func kb(b int) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }

func plotCurves(path string, curves []curve) error {
	loss := plot.New()
	loss.Title.Text = "training loss (running mean per epoch)"
	loss.X.Label.Text = "epoch"
	acc := plot.New()
	acc.Title.Text = "test accuracy"
	acc.X.Label.Text = "epoch"
	for i, c := range curves {
		var lxy, axy plotter.XYs
		if c.start != nil {
			axy = append(axy, *c.start)
		}
		for _, p := range c.t.Curve {
			lxy = append(lxy, plotter.XY{X: c.offset + p.Epoch, Y: p.TrainLoss})
		}
		for _, h := range c.t.History {
			axy = append(axy, plotter.XY{X: c.offset + float64(h.Epoch), Y: 100 * h.TestAcc})
		}
		col := plotter.DefaultLineStyle.Color
		if i < 8 {
			col = plotColors[i]
		}
		if len(lxy) > 0 {
			l, err := plotter.NewLine(lxy)
			if err != nil {
				return err
			}
			l.Color = col
			loss.Add(l)
			loss.Legend.Add(c.name, l)
		}
		if len(axy) > 0 {
			l, p, err := plotter.NewLinePoints(axy)
			if err != nil {
				return err
			}
			l.Color, p.Color = col, col
			acc.Add(l, p)
			acc.Legend.Add(c.name, l)
		}
	}
	acc.Legend.Top = false
	acc.Y.Label.Text = "%"
	loss.Y.Scale = plot.LogScale{}
	loss.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	loss.Legend.Top = true
	img := vgimg.New(vg.Points(900), vg.Points(360))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(10), PadY: vg.Points(10), PadTop: vg.Points(5), PadBottom: vg.Points(5), PadLeft: vg.Points(5), PadRight: vg.Points(5)}
	cs := plot.Align([][]*plot.Plot{{loss, acc}}, tiles, dc)
	loss.Draw(cs[0][0])
	acc.Draw(cs[0][1])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(io.Writer(&buf)); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes())
}

// namedModel sets mk to the built-in architecture named by -model.
func namedModel(name string, mk *func(uint64) *graph.Model) error {
	switch name {
	case "bn":
		*mk = qat.BNCNN
	case "ggml":
		*mk = qat.GGMLCNN
	default:
		return fmt.Errorf("-model %q: want bn, ggml or onnx:FILE", name)
	}
	return nil
}
