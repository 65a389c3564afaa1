package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/infer/textgen"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/sirupsen/logrus"
)

// Greedy parity: prompts of promptLen held-out bytes continued by greedyLen bytes.
const (
	greedyPrompts = 100
	promptLen     = 32
	greedyLen     = 32
)

// integerRuns exports the runs the integer runtime can run (8-bit activations, no online
// rotations) and keeps the W4A8 model for the final sample.
type integerRuns struct {
	w4a8    *infer.LM
	name    string
	written map[string]bool
}

// export lowers run e (trainer tr) to an integer model, writes the first W8A8 and W4A8 ones to
// <out>/tinyllm-w8a8.qm and tinyllm-w4a8.qm, and appends the "-> integer runtime" row to rows:
// the runtime's loss on the validation windows. Runs the runtime cannot express are skipped. It logs the parity report and the share of held-out
// prompts whose greedy continuation is identical in the runtime and the fake-quant graphs.
func (x *integerRuns) export(rows []row, o options, e exp, tr *qat.Trainer, d *data, log *logrus.Logger) ([]row, error) {
	if e.rotate || e.spin || e.recipe.ABits != 8 || (e.recipe.WBits != 8 && e.recipe.WBits != 4) {
		return rows, nil
	}
	start := time.Now()
	qm, err := export.Lower(tr.Prep, export.Options{Batch: o.batch, Calib: d.calX, Name: "tinyllm-" + strings.ToLower(strings.ReplaceAll(e.recipe.Bits(), " ", "-")),
		Meta: map[string]string{"run": e.name, "method": e.method()}})
	if err != nil {
		return nil, err
	}
	ex, err := export.NewLMEval(tr.Prep, qm, o.batch)
	if err != nil {
		return nil, err
	}
	defer ex.Close()
	rep, err := ex.Parity(d.valX, d.valY)
	if err != nil {
		return nil, err
	}
	dur := time.Since(start)
	lm, err := infer.LoadLM(qm)
	if err != nil {
		return nil, err
	}
	cfg := tr.Task.(*qat.NextTokenTask).LM.Config
	pl := min(promptLen, cfg.Ctx/2)
	gl := min(greedyLen, cfg.Ctx-pl)
	prompts := heldOutPrompts(d.corpus.Val, pl)
	rt, err := export.GreedyRuntime(lm, prompts, gl)
	if err != nil {
		return nil, err
	}
	gx, err := export.GreedyGraph(ex.Logits, o.batch, cfg.Ctx, cfg.Vocab, prompts, gl)
	if err != nil {
		return nil, err
	}
	// The same graph with its float ops between the quantization points (gx: with the integer
	// specification's, internal/lmspec, independent of infer).
	arith := ex.Arith()
	ex.SetArith(export.ArithFloat)
	gf, err := export.GreedyGraph(ex.Logits, o.batch, cfg.Ctx, cfg.Vocab, prompts, gl)
	ex.SetArith(arith)
	if err != nil {
		return nil, err
	}
	gt, err := export.GreedyGraph(func(ids []int) ([]float64, error) {
		g, _, err := tr.Forward(qat.Tokens{IDs: [][]int{ids}, Targets: [][]int{ids}}, 0)
		if err != nil {
			return nil, err
		}
		v := g.Out.Value().Data().([]float32)
		out := make([]float64, len(v))
		for i, f := range v {
			out[i] = float64(f)
		}
		return out, nil
	}, o.batch, cfg.Ctx, cfg.Vocab, prompts, gl)
	if err != nil {
		return nil, err
	}
	w, wa := rep.Worst(), worstAlone(rep)
	log.WithFields(logrus.Fields{"run": e.name, "loss_fakequant_all_points": fmt.Sprintf("%.4f", rep.LossGraph),
		"loss_fakequant_float_ops": fmt.Sprintf("%.4f", rep.LossFloatArith),
		"loss_runtime":             fmt.Sprintf("%.4f", rep.LossRuntime), "next_token_agreement": fmt.Sprintf("%.4f", rep.Agreement),
		"next_token_agreement_float_ops": fmt.Sprintf("%.4f", rep.AgreementFloatArith),
		"worst_layer":                    fmt.Sprintf("%s %.4f within 1 LSB (max %d)", w.Name, w.Within1, w.MaxLSB), "group_scale_snap": fmt.Sprintf("%.1e", rep.GroupScaleErr),
		"worst_float_op_alone":            fmt.Sprintf("%s %.4f equal (max %d LSB)", wa.Name, wa.AloneEqual, wa.AloneMaxLSB),
		"greedy32_same_as_training_graph": export.SameShare(rt, gt), "greedy32_same_as_export_graph": export.SameShare(rt, gx),
		"greedy32_same_as_export_graph_float_ops": export.SameShare(rt, gf), "export_graph_arith": rep.Arith,
		"prompts": fmt.Sprintf("%d x %d bytes + %d greedy", len(prompts), pl, gl)}).Info("integer runtime")
	if e.recipe.WBits == 4 && x.w4a8 == nil {
		x.w4a8, x.name = lm, e.name
	}
	name := map[int]string{8: "tinyllm-w8a8.qm", 4: "tinyllm-w4a8.qm"}[e.recipe.WBits]
	if o.outDir != "" && !x.written[name] {
		if x.written == nil {
			x.written = map[string]bool{}
		}
		x.written[name] = true
		path := filepath.Join(o.outDir, name)
		if err := os.MkdirAll(o.outDir, 0o755); err != nil {
			return nil, err
		}
		if err := qmodel.WriteFile(path, qm); err != nil {
			return nil, err
		}
		log.WithField("path", path).Info("integer model written (first run of its bits)")
	}
	return append(rows, row{"  -> integer runtime", e.recipe.Bits(), rep.LossRuntime, dur}), nil
}

// heldOutPrompts returns greedyPrompts prompts of n bytes spread over the text (none when it is
// shorter than n).
func heldOutPrompts(val []byte, n int) [][]int {
	var tk text.ByteTokenizer
	var ps [][]int
	if len(val) < n {
		return nil
	}
	for i := 0; i < greedyPrompts; i++ {
		o := i * (len(val) - n) / greedyPrompts
		ps = append(ps, tk.Encode(val[o:o+n]))
	}
	return ps
}

// printSample prints o.gen bytes generated after o.prompt by the integer W4A8 model (if any).
func (x *integerRuns) printSample(o options) error {
	if x.w4a8 == nil {
		return nil
	}
	s, err := x.sample(o.prompt, o.gen, o.temp, o.seed)
	if err != nil {
		return err
	}
	fmt.Printf("\nsample (integer runtime, %s, temperature %.2f):\n%s\n", x.name, o.temp, s)
	return nil
}

// sample generates n bytes after prompt with the integer model (temperature temp).
func (x *integerRuns) sample(prompt string, n int, temp float64, seed uint64) (string, error) {
	smp, err := textgen.NewSampler(textgen.SamplerOptions{Temperature: temp, Seed: seed})
	if err != nil {
		return "", err
	}
	g, err := textgen.NewGenerator(x.w4a8, smp, textgen.GeneratorOptions{Slide: true})
	if err != nil {
		return "", err
	}
	var tk text.ByteTokenizer
	toks := tk.Encode([]byte(prompt))
	if err := g.Generate(toks, n, func(t int) error { toks = append(toks, t); return nil }); err != nil {
		return "", err
	}
	return string(tk.Decode(toks)), nil
}

// worstAlone returns the layer whose float op alone has the smallest share of levels equal to the
// runtime op's.
func worstAlone(r *export.LMReport) export.LMLayerParity {
	var w export.LMLayerParity
	for i, l := range r.Layers {
		if i == 0 || l.AloneEqual < w.AloneEqual {
			w = l
		}
	}
	return w
}
