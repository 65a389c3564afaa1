package qat

import (
	"fmt"
	"math"
	"strings"
)

// Validate reports the first field of c that no training run can use: a negative count or step,
// a learning rate, momentum or factor that is negative or not finite, Momentum or Beta2 of 1 or
// more, an unknown schedule. Zero values are valid (they take the defaults noted on Config).
// NewTrainer calls it, so a bad value fails before any work instead of being
// reinterpreted (a negative LR would train uphill, a negative epoch count index out of range).
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Epochs", int64(c.Epochs)}, {"BatchSize", int64(c.BatchSize)}, {"EvalBatch", int64(c.EvalBatch)},
		{"StepEpochs", int64(c.StepEpochs)}, {"StopAfter", int64(c.StopAfter)}, {"CalibBatches", int64(c.CalibBatches)},
		{"LogEvery", int64(c.LogEvery)}, {"Steps", c.Steps}, {"Warmup", c.Warmup},
		{"FakeQuantDelay", c.FakeQuantDelay}, {"ObserverFreeze", c.ObserverFreeze}, {"BNFreeze", c.BNFreeze},
	} {
		if f.v < 0 {
			return fmt.Errorf("qat: Config.%s is %d, want >= 0 (0: the default)", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
		max  float64 // exclusive upper bound, 0: none
	}{
		{"LR", c.LR, 0}, {"MinLR", c.MinLR, 0}, {"Momentum", c.Momentum, 1}, {"WeightDecay", c.WeightDecay, 0},
		{"Beta2", c.Beta2, 1}, {"ClipNorm", c.ClipNorm, 0}, {"StepGamma", c.StepGamma, 0},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || (f.max > 0 && f.v >= f.max) {
			want := "finite and >= 0"
			if f.max > 0 {
				want = fmt.Sprintf("in [0,%g)", f.max)
			}
			return fmt.Errorf("qat: Config.%s is %v, want %s (0: the default)", f.name, f.v, want)
		}
	}
	switch c.Schedule {
	case "", ConstLR, CosineLR, StepLR, WarmupCosineLR:
	default:
		return fmt.Errorf("qat: Config.Schedule %q: want %s", c.Schedule, strings.Join([]string{ConstLR, CosineLR, StepLR, WarmupCosineLR}, ", "))
	}
	return nil
}

// labelError is the error of a batch whose example (dataset index) has a label outside the
// model's classes.
func labelError(example, label, classes int) error {
	return fmt.Errorf("qat: example %d has label %d, outside [0,%d) (the model has %d classes)", example, label, classes, classes)
}
