package main

import (
	"time"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
)

// trainConfig is steps of AdamW (beta2 0.95, clip 1) with warm-up (a twentieth of the steps for
// the float run, a tenth for QAT) and cosine decay to a tenth of the peak; QAT starts from min/max.
func trainConfig(o options, lr float64, steps, warmupDiv int, log *logrus.Logger) qat.Config {
	return qat.Config{Steps: int64(steps), BatchSize: o.batch, LR: lr, MinLR: lr / 10, Schedule: qat.WarmupCosineLR, QuantInit: qat.InitMinMax,
		Warmup: int64(max(steps/warmupDiv, 1)), Beta2: 0.95, ClipNorm: 1, WeightDecay: o.wd, Seed: o.seed, Logger: log}
}

// fit trains tr for its configured steps and returns the time taken.
func fit(tr *qat.Trainer) (time.Duration, error) {
	start := time.Now()
	err := tr.Fit(nil)
	return time.Since(start), err
}

// newTask is next-token training of m (built with opts) on the corpus' training windows from
// batch first on, with the calibration batches of d.
func newTask(m *graph.LM, opts graph.LMOptions, first int, d *data) *qat.NextTokenTask {
	return &qat.NextTokenTask{LM: m, Opts: opts, Train: d.sampler.Next, First: int64(first), CalibIDs: d.calX, CalibTargets: d.calY}
}
