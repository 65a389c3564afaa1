package qat

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestConfigValidate (issue 14, item 4): every field a run cannot use is an error naming it;
// zero values and ordinary settings pass.
func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"zero", Config{}, ""},
		{"usual", Config{Epochs: 3, BatchSize: 64, LR: 2e-3, MinLR: 4e-5, Schedule: CosineLR, Momentum: 0.9, Beta2: 0.95, ClipNorm: 1, WeightDecay: 0.01}, ""},
		{"negative epochs", Config{Epochs: -1}, "Config.Epochs is -1"},
		{"negative batch", Config{BatchSize: -5}, "Config.BatchSize is -5"},
		{"negative eval batch", Config{EvalBatch: -1}, "Config.EvalBatch"},
		{"negative stop", Config{StopAfter: -2}, "Config.StopAfter"},
		{"negative calibration", Config{CalibBatches: -1}, "Config.CalibBatches"},
		{"negative warm-up", Config{Warmup: -10}, "Config.Warmup"},
		{"negative freeze", Config{ObserverFreeze: -1}, "Config.ObserverFreeze"},
		{"negative BN freeze", Config{BNFreeze: -1}, "Config.BNFreeze"},
		{"negative delay", Config{FakeQuantDelay: -1}, "Config.FakeQuantDelay"},
		{"negative LR", Config{LR: -1}, "Config.LR is -1"},
		{"NaN LR", Config{LR: math.NaN()}, "Config.LR is NaN"},
		{"infinite LR", Config{LR: math.Inf(1)}, "Config.LR is +Inf"},
		{"negative min LR", Config{MinLR: -1e-3}, "Config.MinLR"},
		{"momentum 1", Config{Momentum: 1}, "Config.Momentum is 1, want in [0,1)"},
		{"beta2 above 1", Config{Beta2: 1.5}, "Config.Beta2"},
		{"negative decay", Config{WeightDecay: -0.1}, "Config.WeightDecay"},
		{"negative clip", Config{ClipNorm: -1}, "Config.ClipNorm"},
		{"negative gamma", Config{StepGamma: -0.5}, "Config.StepGamma"},
		{"unknown schedule", Config{Schedule: "linear"}, `Config.Schedule "linear"`},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if c.want != "" {
			if _, err := NewTrainer(Classify(tinyModel(1), outlierSet{16}), nil, c.cfg); err == nil {
				t.Errorf("%s: NewTrainer accepted the config", c.name)
			}
		}
	}
}

// badLabelSet is outlierSet with one example whose label is outside the model's 10 classes.
type badLabelSet struct {
	n, at, label int
}

func (b badLabelSet) Len() int { return b.n }
func (b badLabelSet) Batch(idx []int, x []float32, y []int) {
	outlierSet{b.n}.Batch(idx, x, y)
	for k, i := range idx {
		if i == b.at {
			y[k] = b.label
		}
	}
}

// TestLabelsOutOfRange (issue 14, item 4): a label outside [0, classes) is an error naming the
// example and the label, in float and QAT training and in evaluation, instead of being skipped
// (a one-hot of zeros) silently.
func TestLabelsOutOfRange(t *testing.T) {
	for _, label := range []int{10, -1, 1 << 20} {
		bad := badLabelSet{n: 32, at: 5, label: label}
		want := "example 5 has label " + strconv.Itoa(label) + ", outside [0,10)"
		tr, err := NewTrainer(Classify(tinyModel(1), bad), nil, Config{Epochs: 1, BatchSize: 8, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Fit(Images{Data: outlierSet{16}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Fit with label %d: %v", label, err)
		}
		tr.Close()
		m := tinyModel(1)
		p, err := Prepare(m, W8A8())
		if err != nil {
			t.Fatal(err)
		}
		qt, err := NewTrainer(Classify(m, bad), p, Config{Epochs: 1, BatchSize: 8, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if err := qt.Fit(Images{Data: outlierSet{16}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("QAT Fit with label %d: %v", label, err)
		}
		qt.Close()
		if _, _, err := Evaluate(tinyModel(1), nil, bad, 8); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Evaluate with label %d: %v", label, err)
		}
	}
	// Labels in range train and evaluate.
	tr, err := NewTrainer(Classify(tinyModel(1), outlierSet{16}), nil, Config{Epochs: 1, BatchSize: 8, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Fit(Images{Data: outlierSet{16}}); err != nil {
		t.Errorf("Fit with valid labels: %v", err)
	}
}
