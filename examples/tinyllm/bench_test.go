package main

import (
	"io"
	"testing"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/fastblas"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

// BenchmarkTrainStep times one training step (forward, backward, AdamW) of the default tinyllm
// model (2 blocks, d 64, 4 heads, hidden 128, ctx 64, batch 16) in float and with fake
// quantization, so the QAT overhead is measured in one run.
func BenchmarkTrainStep(b *testing.B) {
	defer fastblas.Install()()
	toks := make([]int, 1<<16)
	for i := range toks {
		toks[i] = (i * 7919) % 251
	}
	s, err := text.NewSampler(toks, 16, 64, 1)
	if err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := graph.LMConfig{Vocab: 256, Dim: 64, Layers: 2, Heads: 4, Hidden: 128, Ctx: 64}
	for _, c := range []struct {
		name   string
		q      *qat.LMRecipe
		rotate bool
	}{
		{"float", nil, false},
		{"qat-w8a8", &qat.LMRecipe{WBits: 8, ABits: 8, ActMomentum: 0.05}, false},
		{"qat-w4a8-g32-lsq", &qat.LMRecipe{WBits: 4, ABits: 8, Group: 32, HeadBits: 8, LearnW: true, ActMomentum: 0.05}, false},
		{"qat-w4a8-g32-lsq-hadamard", &qat.LMRecipe{WBits: 4, ABits: 8, Group: 32, HeadBits: 8, LearnW: true, ActMomentum: 0.05}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			lm, err := graph.NewLM("tinyllm", cfg, tensor.Float32, 1)
			if err != nil {
				b.Fatal(err)
			}
			var p *qat.Prepared
			if c.q != nil {
				if p, err = qat.Prepare(lm, c.q.QConfig()); err != nil {
					b.Fatal(err)
				}
			}
			var rot graph.RotateFunc
			if c.rotate {
				rot = qat.HadamardRotate
			}
			cx, cy := s.Next(1 << 20)
			task := &qat.NextTokenTask{LM: lm, Opts: graph.LMOptions{Rotate: rot, RotateSeed: rotateSeed}, Train: s.Next,
				CalibIDs: [][]int{cx}, CalibTargets: [][]int{cy}}
			// epochs of one step each: every Fit call (StopAfter 1) takes one more step
			tr, err := qat.NewTrainer(task, p, qat.Config{Steps: 1, Epochs: 1 << 30, StopAfter: 1, BatchSize: 16, LR: 1e-3, Beta2: 0.95,
				ClipNorm: 1, WeightDecay: 0.05, QuantInit: qat.InitMinMax, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			if err := tr.InitQuantizers(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := tr.Fit(nil); err != nil { // forward, backward, AdamW step
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(16*64)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
