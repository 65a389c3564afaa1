package qat

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/qatgo/qatgo/graph"
)

// randomSet is a synthetic Dataset for benchmarks (no MNIST needed).
type randomSet struct{ n int }

func (r randomSet) Len() int { return r.n }
func (r randomSet) Batch(idx []int, x []float32, y []int) {
	rng := rand.New(rand.NewPCG(uint64(idx[0]), 1))
	for i := range x {
		x[i] = rng.Float32()
	}
	for i := range y {
		y[i] = rng.IntN(10)
	}
}

func benchTrainer(b *testing.B, m *graph.Model, qc *QConfig) (*Trainer, func() error) {
	var p *Prepared
	if qc != nil {
		var err error
		if p, err = Prepare(m, *qc); err != nil {
			b.Fatal(err)
		}
	}
	t, err := NewTrainer(Classify(m, randomSet{n: 64 * 4}), p, Config{BatchSize: 64, Seed: 1, Logger: quiet(), CalibBatches: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := t.ensureTrain(); err != nil {
		b.Fatal(err)
	}
	if err := t.InitQuantizers(); err != nil {
		b.Fatal(err)
	}
	step := func() error {
		_, _, err := t.trainStep(1e-4)
		return err
	}
	if err := step(); err != nil { // warm up buffers
		b.Fatal(err)
	}
	return t, step
}

// BenchmarkTrainStep measures one training step (batch 64) of the BN CNN in float and under QAT.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		name string
		qc   *QConfig
	}{{"float", nil}, {"W8A8", ptr(W8A8())}, {"W4A4-LSQ", ptr(W4A4LSQ())}} {
		b.Run(c.name, func(b *testing.B) {
			t, step := benchTrainer(b, BNCNN(1), c.qc)
			defer t.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := step(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQATOverFloat interleaves float and QAT (W4A4 LSQ and W8A8) steps of the BN CNN in one
// run and reports the ratio of their mean step times (goal: at most 1.5).
func BenchmarkQATOverFloat(b *testing.B) { qatOverFloat(b, BNCNN) }

func qatOverFloat(b *testing.B, mk func(uint64) *graph.Model) {
	ft, fstep := benchTrainer(b, mk(1), nil)
	defer ft.Close()
	lt, lstep := benchTrainer(b, mk(1), ptr(W4A4LSQ()))
	defer lt.Close()
	ot, ostep := benchTrainer(b, mk(1), ptr(W8A8()))
	defer ot.Close()
	var tf, tl, to time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range []struct {
			f   func() error
			acc *time.Duration
		}{{fstep, &tf}, {lstep, &tl}, {ostep, &to}} {
			st := time.Now()
			if err := s.f(); err != nil {
				b.Fatal(err)
			}
			*s.acc += time.Since(st)
		}
	}
	b.ReportMetric(float64(tf.Milliseconds())/float64(b.N), "float-ms/step")
	b.ReportMetric(float64(tf.Microseconds())/1e3/float64(64*b.N), "float-ms/image")
	b.ReportMetric(float64(to.Microseconds())/1e3/float64(64*b.N), "w8a8-ms/image")
	b.ReportMetric(float64(tl)/float64(tf), "lsq/float")
	b.ReportMetric(float64(to)/float64(tf), "w8a8/float")
}

// BenchmarkTrainStepConvop is BenchmarkTrainStep with package convop's Conv2d, MaxPool2D and ReLU.
func BenchmarkTrainStepConvop(b *testing.B) {
	defer useConvop()()
	BenchmarkTrainStep(b)
}

// BenchmarkQATOverFloatConvop is BenchmarkQATOverFloat with package convop's ops (the example's
// default), where the fake-quant ops are a larger share of the step.
func BenchmarkQATOverFloatConvop(b *testing.B) {
	defer useConvop()()
	BenchmarkQATOverFloat(b)
}

// BenchmarkQATOverFloatGGMLConvop is BenchmarkQATOverFloatConvop for ggml's MNIST CNN (no
// BatchNorm): ms per image of a training step (batch 64) compare with ggml's 0.40 ms per image.
func BenchmarkQATOverFloatGGMLConvop(b *testing.B) {
	defer useConvop()()
	qatOverFloat(b, GGMLCNN)
}
