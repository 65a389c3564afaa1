package qat

import (
	"math"
	"testing"
)

// Hand-computed single steps of Adam (bias-corrected) and SGD with momentum.
func TestOptimizerSteps(t *testing.T) {
	for _, tc := range []struct {
		kind string
		wd   float64
		want [2]float64 // w after step 1 and step 2 for w0 = 1, grads 0.5 then -0.25, lr 0.1
	}{
		// SGD, momentum 0.9: m1 = 0.5, w1 = 1 - 0.05; m2 = 0.45 - 0.25 = 0.2, w2 = w1 - 0.02
		{SGD, 0, [2]float64{0.95, 0.93}},
		// Adam: step 1 moves by lr*sign(g) (up to eps): 0.9; step 2: m = 0.9*0.05 + 0.1*(-0.25) = 0.02,
		// v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225; mhat = 0.02/0.19, vhat = 0.00031225/0.001999
		{Adam, 0, [2]float64{0.9, 0.9 - 0.1*(0.02/0.19)/(math.Sqrt(0.00031225/0.001999)+1e-8)}},
		// SGD with L2 weight decay 0.1: g1 = 0.5 + 0.1 = 0.6, w1 = 0.94; g2 = -0.25 + 0.094 = -0.156,
		// m2 = 0.54 - 0.156 = 0.384, w2 = 0.94 - 0.0384
		{SGD, 0.1, [2]float64{0.94, 0.94 - 0.0384}},
	} {
		o, err := newOptimizer(tc.kind, 0.9, tc.wd)
		if err != nil {
			t.Fatal(err)
		}
		w := []float32{1}
		for i, g := range []float32{0.5, -0.25} {
			o.t++
			o.update("w", w, []float32{g}, 0.1, true)
			if math.Abs(float64(w[0])-tc.want[i]) > 1e-6 {
				t.Errorf("%s wd %v step %d: w = %v, want %v", tc.kind, tc.wd, i+1, w[0], tc.want[i])
			}
		}
	}
	if _, err := newOptimizer("rmsprop", 0, 0); err == nil {
		t.Error("unknown optimizer accepted")
	}
}

func TestLRSchedules(t *testing.T) {
	c := Config{LR: 1, MinLR: 0.1, Schedule: CosineLR}
	if v := lrAt(&c, 0, 100, 10); v != 1 {
		t.Errorf("cosine start %v", v)
	}
	if v := lrAt(&c, 50, 100, 10); math.Abs(v-0.55) > 1e-12 {
		t.Errorf("cosine middle %v", v)
	}
	if v := lrAt(&c, 100, 100, 10); math.Abs(v-0.1) > 1e-12 {
		t.Errorf("cosine end %v", v)
	}
	s := Config{LR: 1, Schedule: StepLR, StepEpochs: 2, StepGamma: 0.5}
	for _, tc := range []struct {
		step int64
		want float64
	}{{0, 1}, {19, 1}, {20, 0.5}, {45, 0.25}} {
		if v := lrAt(&s, tc.step, 100, 10); v != tc.want {
			t.Errorf("step LR at %d = %v, want %v", tc.step, v, tc.want)
		}
	}
	k := Config{LR: 0.3}
	if v := lrAt(&k, 77, 100, 10); v != 0.3 {
		t.Errorf("constant LR %v", v)
	}
}

// TestWarmupCosine checks the schedule at hand-computed points.
func TestWarmupCosine(t *testing.T) {
	for _, c := range []struct {
		step int64
		want float64
	}{{0, 0.5}, {1, 1}, {2, 1}, {6, 0.1 + 0.9*0.5}, {10, 0.1}} {
		if got := WarmupCosine(1, 0.1, c.step, 10, 2); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("step %d: %v, want %v", c.step, got, c.want)
		}
	}
	cfg := Config{LR: 1, MinLR: 0.1, Schedule: WarmupCosineLR, Warmup: 2}
	if got := lrAt(&cfg, 6, 10, 10); math.Abs(got-0.55) > 1e-12 {
		t.Errorf("lrAt: %v", got)
	}
}

// TestAdamWClippedFirstStep: after one step bias-corrected Adam moves each weight by lr*sign(g)
// plus the decoupled decay lr*wd*w; clipping scales g (norm 5.02 -> 1) but not its sign.
func TestAdamWClippedFirstStep(t *testing.T) {
	o, err := newOptimizerClip(Adam, 0.9, 0.95, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := []float32{1, 1, -2}
	g := []float32{3, -4, 0.5}
	if gn := o.beginStep([][]float32{g}); math.Abs(gn-math.Sqrt(25.25)) > 1e-9 || math.Abs(o.scale-1/gn) > 1e-12 {
		t.Fatalf("norm %v scale %v", gn, o.scale)
	}
	o.update("w", w, g, 0.01, true)
	want := []float64{1 - 0.001 - 0.01, 1 - 0.001 + 0.01, -2 + 0.002 - 0.01}
	for i := range w {
		if math.Abs(float64(w[i])-want[i]) > 1e-6 {
			t.Errorf("w[%d] = %v, want %v", i, w[i], want[i])
		}
	}
	if ClipFactor(0.5, 1) != 1 || ClipFactor(4, 1) != 0.25 || ClipFactor(4, 0) != 1 {
		t.Error("ClipFactor")
	}
	if _, err := newOptimizerClip(Adam, 0.9, 1.5, 0, 0); err == nil {
		t.Error("beta2 1.5: no error")
	}
}
