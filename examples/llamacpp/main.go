// Command llamacpp compares, in llama.cpp itself, Q4_0 models of qatgo's tiny byte-level LM:
// llama.cpp's own post-training Q4_0 (what users do today: quantize the f32 GGUF) against qatgo
// GPTQ on the Q4_0 grid (qat.GPTQConfig.GGMLQ4_0) and qatgo QAT with the Q4_0 preset
// (qat.GGMLPreset: weights and matmul inputs fake-quantized exactly as llama.cpp's CPU backend
// computes), with llama.cpp's max/-8 block scales or with learned fp16 block scales
// (GGMLPreset.LearnScale), as bits per byte that llama.cpp measures on held-out text.
//
//	go run ./examples/tinyllm -quick -runs ptq:w8a8 -gen 0 -ckpt /tmp/float.ckpt -out ""
//	go run ./examples/llamacpp -ckpt /tmp/float.ckpt
//
// It fine-tunes three copies of the float checkpoint for -steps steps through qat.Trainer with the
// same data and optimizer, one in float (the reference: QAT also trains) and two prepared in one
// call with the Q4_0 preset (qat.Prepare(lm, preset.QConfig())), writes
// GGUF files to -out, quantizes the float one with llama.cpp's quantizer (.ci/llamacpp/quantize.py,
// default and "pure" tensor types) and evaluates every file in llama.cpp through node-llama-cpp
// (.ci/llamacpp/eval.mjs; install it there with npm ci --ignore-scripts --omit=optional).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/gguf/llama"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/flagcheck"
	qatgo "github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
)

type options struct {
	ckpt, out, llamaDir string
	steps, windows      int
	calib               int
	lr                  float64
	maxBytes            int
}

func main() {
	var o options
	flag.StringVar(&o.ckpt, "ckpt", filepath.Join(os.TempDir(), "qatgo-tinyllm-float.ckpt"), "float LM checkpoint (examples/tinyllm writes one)")
	flag.StringVar(&o.out, "out", filepath.Join(os.TempDir(), "qatgo-llamacpp"), "directory for the GGUF files")
	flag.StringVar(&o.llamaDir, "llamacpp", ".ci/llamacpp", "directory with node-llama-cpp, eval.mjs and quantize.py")
	flag.IntVar(&o.steps, "steps", 200, "fine-tuning steps (float reference and QAT alike)")
	flag.IntVar(&o.calib, "calib", 8, "GPTQ calibration batches of 16 training windows")
	flag.Float64Var(&o.lr, "lr", 3e-4, "Adam learning rate")
	flag.IntVar(&o.windows, "windows", 64, "held-out windows of Ctx bytes to evaluate")
	flag.IntVar(&o.maxBytes, "max-bytes", 1<<20, "corpus cap in bytes (as the tinyllm run that wrote the checkpoint)")
	flag.Parse()
	if err := o.validate(flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "llamacpp:", err)
		os.Exit(2)
	}
	log := logrus.New()
	if err := run(o, log); err != nil {
		log.Error(err)
		os.Exit(1)
	}
}

// validate checks the flag values before any work (issue 14: no value silently reinterpreted).
func (o *options) validate(args []string) error {
	return flagcheck.First(
		flagcheck.NoArgs(args),
		flagcheck.NotEmpty("ckpt", o.ckpt),
		flagcheck.NotEmpty("out", o.out),
		flagcheck.NotEmpty("llamacpp", o.llamaDir),
		flagcheck.AtLeast("steps", o.steps, 1),
		flagcheck.Positive("lr", o.lr),
		flagcheck.AtLeast("windows", o.windows, 1),
		flagcheck.AtLeast("calib", o.calib, 1),
		flagcheck.AtLeast("max-bytes", o.maxBytes, 1),
	)
}

func run(o options, log *logrus.Logger) error {
	ck, err := graph.LoadCheckpoint(o.ckpt)
	if err != nil {
		return err
	}
	m, err := llama.LMFromCheckpoint(ck, "tinyllm")
	if err != nil {
		return err
	}
	corpus, err := text.LoadGoSource(text.Options{MaxBytes: o.maxBytes})
	if err != nil {
		return err
	}
	var tk text.ByteTokenizer
	train, val := tk.Encode(corpus.Train), tk.Encode(corpus.Val)
	C := m.Config.Ctx
	var seqs [][]int
	for i := 0; i+C <= len(val) && len(seqs) < o.windows; i += C {
		seqs = append(seqs, val[i:i+C])
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"windows": len(seqs), "predictions": len(seqs) * (C - 1)}).Info("held-out text")
	float, _, err := finetune(m, nil, train, o, log)
	if err != nil {
		return err
	}
	gptq, err := gptqQ4_0(float, train, o, log)
	if err != nil {
		return err
	}
	qat, pq, err := finetune(m, &qatgo.GGMLPreset{Type: gguf.Q4_0}, train, o, log)
	if err != nil {
		return err
	}
	lsq, pl, err := finetune(m, &qatgo.GGMLPreset{Type: gguf.Q4_0, LearnScale: true}, train, o, log)
	if err != nil {
		return err
	}
	path := func(n string) string { return filepath.Join(o.out, n) }
	write := func(lm *graph.LM, name string, t gguf.TensorType) error {
		w, err := llama.FromLM(lm)
		if err != nil {
			return err
		}
		return llama.WriteFile(path(name), w, llama.EncodeOptions{Type: t})
	}
	if err := write(float, "float-f32.gguf", gguf.F32); err != nil {
		return err
	}
	if err := write(qat, "qat-q4_0.gguf", gguf.Q4_0); err != nil {
		return err
	}
	if err := write(float, "rtn-q4_0.gguf", gguf.Q4_0); err != nil {
		return err
	}
	if err := write(gptq, "gptq-q4_0.gguf", gguf.Q4_0); err != nil {
		return err
	}
	// the learned scales are not llama.cpp's max rule: write the blocks the forward used, exactly
	wl, err := llama.FromPrepared(pl)
	if err != nil {
		return err
	}
	if err := llama.WriteFile(path("qat-lsq-q4_0.gguf"), wl, llama.EncodeOptions{Type: gguf.Q4_0, Exact: true}); err != nil {
		return err
	}
	for _, mode := range []string{"default", "pure"} {
		cmd := exec.Command("python3", filepath.Join(o.llamaDir, "quantize.py"), path("float-f32.gguf"), path("llamacpp-q4_0-"+mode+".gguf"), "q4_0", mode)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("llama.cpp quantize: %v\n%s", err, out)
		}
	}
	qgFloat, err := qatgoBPB(float, nil, seqs)
	if err != nil {
		return err
	}
	qgQAT, err := qatgoBPB(qat, pq.EvalQuantizer(), seqs)
	if err != nil {
		return err
	}
	qgLSQ, err := qatgoBPB(lsq, pl.EvalQuantizer(), seqs)
	if err != nil {
		return err
	}
	rows := []struct{ name, file string }{
		{"float (f32 GGUF)", "float-f32.gguf"},
		{"llama.cpp PTQ Q4_0 (llama-quantize defaults: Q6_K output)", "llamacpp-q4_0-default.gguf"},
		{"llama.cpp PTQ Q4_0 (pure: every weight Q4_0)", "llamacpp-q4_0-pure.gguf"},
		{"qatgo round-to-nearest Q4_0 of the float model (F32 embedding)", "rtn-q4_0.gguf"},
		{"qatgo GPTQ on the Q4_0 grid (F32 embedding)", "gptq-q4_0.gguf"},
		{"qatgo QAT, Q4_0 preset (F32 embedding)", "qat-q4_0.gguf"},
		{"qatgo QAT, Q4_0 preset, learned fp16 block scales (F32 embedding)", "qat-lsq-q4_0.gguf"},
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nmodel (%d fine-tuning steps from %s)\tfile bytes\tbits/byte in llama.cpp\tvs float\tdecode tok/s (node-llama-cpp, 1 thread)\n", o.steps, filepath.Base(o.ckpt))
	var base float64
	for i, r := range rows {
		res, err := evalLlama(o.llamaDir, path(r.file), seqs, 256)
		if err != nil {
			return err
		}
		bpb := bpbOf(res.LogProbs, seqs)
		if i == 0 {
			base = bpb
		}
		fi, _ := os.Stat(path(r.file))
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%+.2f%%\t%.0f\n", r.name, fi.Size(), bpb, 100*(bpb/base-1), res.Timings.GenTokens/res.Timings.GenMS*1000)
	}
	tw.Flush()
	fmt.Printf("\nqatgo's own forward on the same text: float %.4f, QAT Q4_0 fake-quant %.4f, learned scales %.4f bits/byte\n", qgFloat, qgQAT, qgLSQ)
	return nil
}

// gptqQ4_0 returns a copy of m whose linears GPTQ quantized on llama.cpp's Q4_0 grid
// (qat.GPTQConfig.GGMLQ4_0, act-order), calibrated on -calib batches of 16 training windows: the
// GGUF writer then stores exactly GPTQ's levels and scales.
func gptqQ4_0(m *graph.LM, train []int, o options, log *logrus.Logger) (*graph.LM, error) {
	c, err := clone(m)
	if err != nil {
		return nil, err
	}
	s, err := text.NewSampler(train, 16, c.Config.Ctx, 777)
	if err != nil {
		return nil, err
	}
	stats, err := qatgo.CollectLMStats(c, graph.LMOptions{Batch: 16}, func(i int) ([]int, []int) { return s.Next(int64(i)) }, o.calib, true)
	if err != nil {
		return nil, err
	}
	qs, err := qatgo.GPTQLinears(c, stats, func(graph.LMLinear) (qatgo.GPTQConfig, bool) {
		return qatgo.GPTQConfig{Bits: 4, GroupSize: 32, GGMLQ4_0: true, ActOrder: true}, true
	})
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"linears": len(qs), "calibration windows": 16 * o.calib}).Info("GPTQ on the Q4_0 grid")
	return c, nil
}

func clone(m *graph.LM) (*graph.LM, error) {
	c, err := graph.NewLM(m.Name, m.Config, m.Dtype, 0)
	if err != nil {
		return nil, err
	}
	for _, p := range m.Params() {
		copy(c.Param(p.Name).Value.Data().([]float32), p.Value.Data().([]float32))
	}
	return c, nil
}

// finetune trains a copy of m through qat.Trainer (Adam with beta2 0.95, batch 16, -lr, -steps,
// the same windows for every run): in float (preset nil), or prepared in one call with the GGML
// preset, whose Prepared it returns too.
func finetune(m *graph.LM, preset *qatgo.GGMLPreset, train []int, o options, log *logrus.Logger) (*graph.LM, *qatgo.Prepared, error) {
	c, err := clone(m)
	if err != nil {
		return nil, nil, err
	}
	s, err := text.NewSampler(train, 16, c.Config.Ctx, 12345)
	if err != nil {
		return nil, nil, err
	}
	cal, err := text.NewSampler(train, 16, c.Config.Ctx, 999)
	if err != nil {
		return nil, nil, err
	}
	task := &qatgo.NextTokenTask{LM: c, Train: s.Next}
	for i := int64(0); i < 2; i++ { // the learned scales start from these windows' weight ranges
		ids, targets := cal.Next(i)
		task.CalibIDs, task.CalibTargets = append(task.CalibIDs, ids), append(task.CalibTargets, targets)
	}
	var p *qatgo.Prepared
	if preset != nil {
		if p, err = qatgo.Prepare(c, preset.QConfig()); err != nil {
			return nil, nil, err
		}
	}
	tr, err := qatgo.NewTrainer(task, p, qatgo.Config{BatchSize: 16, LR: o.lr, Beta2: 0.95, Steps: int64(o.steps),
		CalibBatches: 2, Logger: log, LogEvery: 50})
	if err != nil {
		return nil, nil, err
	}
	defer tr.Close()
	if err := tr.Fit(nil); err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

func qatgoBPB(m *graph.LM, q graph.Quantizer, seqs [][]int) (float64, error) {
	net, err := m.Build(graph.LMOptions{Batch: 1, Quant: q})
	if err != nil {
		return 0, err
	}
	vm := G.NewTapeMachine(net.G)
	defer vm.Close()
	V := m.Config.Vocab
	var nll float64
	n := 0
	for _, s := range seqs {
		if err := net.SetBatch(s, s); err != nil {
			return 0, err
		}
		if err := vm.RunAll(); err != nil {
			return 0, err
		}
		lg := net.Logits.Value().Data().([]float32)
		for p := 0; p+1 < len(s); p++ {
			row := lg[p*V : (p+1)*V]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = max(mx, float64(v))
			}
			var z float64
			for _, v := range row {
				z += math.Exp(float64(v) - mx)
			}
			nll -= float64(row[s[p+1]]) - mx - math.Log(z)
			n++
		}
		vm.Reset()
	}
	return nll / float64(n) / math.Ln2, nil
}

type evalResult struct {
	LogProbs [][][]float64 `json:"logprobs"`
	Timings  struct {
		GenTokens float64 `json:"gen_tokens"`
		GenMS     float64 `json:"gen_ms"`
	} `json:"timings"`
}

func evalLlama(dir, model string, seqs [][]int, gen int) (*evalResult, error) {
	in, _ := json.Marshal(map[string]any{"model": model, "sequences": seqs,
		"greedy": []map[string]any{{"prompt": seqs[0][:8], "n": gen}}})
	cmd := exec.Command("node", "eval.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("llama.cpp on %s: %v\n%s", model, err, stderr.String())
	}
	var r evalResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func bpbOf(lp [][][]float64, seqs [][]int) float64 {
	var nll float64
	n := 0
	for i, s := range seqs {
		for p := 0; p+1 < len(s); p++ {
			nll -= lp[i][p][s[p+1]]
			n++
		}
	}
	return nll / float64(n) / math.Ln2
}
