package main

import (
	"io"
	"testing"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/fastblas"
	"github.com/qatgo/qatgo/graph"
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
		q      *qspec
		rotate bool
	}{
		{"float", nil, false},
		{"qat-w8a8", &qspec{wbits: 8, abits: 8, actMomentum: 0.05}, false},
		{"qat-w4a8-g32-lsq", &qspec{wbits: 4, abits: 8, group: 32, headBits: 8, learnW: true, actMomentum: 0.05}, false},
		{"qat-w4a8-g32-lsq-hadamard", &qspec{wbits: 4, abits: 8, group: 32, headBits: 8, learnW: true, actMomentum: 0.05}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			lm, err := graph.NewLM("tinyllm", cfg, tensor.Float32, 1)
			if err != nil {
				b.Fatal(err)
			}
			var q *lmQuant
			if c.q != nil {
				q = newQuant(*c.q, false)
			}
			var rot graph.RotateFunc
			if c.rotate {
				rot = hadamard
			}
			tr, err := newTrainRun(c.name, lm, q, rot, nil, 16, s, 0.05, log)
			if err != nil {
				b.Fatal(err)
			}
			defer tr.close()
			b.ReportAllocs()
			i := int64(0)
			for b.Loop() {
				x, y := s.Next(i)
				i++
				if _, err := tr.forward(x, y); err != nil {
					b.Fatal(err)
				}
				if _, err := tr.opt.step(tr.params, 1e-3); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(16*64)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
