package export

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// crafted writes the state of p to a checkpoint file, lets edit change it, and loads it back
// into a fresh smallCNN prepared with W8A8: a damaged checkpoint built with the package's own
// writers (issue 14, item 7).
func crafted(t *testing.T, p *qat.Prepared, edit func(c *graph.Checkpoint)) *qat.Prepared {
	t.Helper()
	c := &graph.Checkpoint{Meta: map[string]string{}}
	p.Model.SaveState(c)
	p.SaveState(c)
	path := filepath.Join(t.TempDir(), "ck.bin")
	if err := graph.SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	c, err := graph.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(c)
	q, err := PrepareCheckpoint(c, smallCNN(1), qat.W8A8())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func fill(c *graph.Checkpoint, name string, v float64) func(*testing.T) {
	return func(t *testing.T) {
		d, ok := c.Tensors[name]
		if !ok {
			t.Fatalf("checkpoint has no tensor %q", name)
		}
		switch x := d.Data().(type) {
		case []float32:
			for i := range x {
				x[i] = float32(v)
			}
		case []float64:
			for i := range x {
				x[i] = v
			}
		}
	}
}

// TestCheckPlausible (issue 14, item 7): checkpoints whose weights are 1e30, all zero, NaN, or
// whose observer ranges are zero used to export without a word (the audit measured 8.5%, 12.6%
// and 77.5% accuracy); CheckPlausible and Export now refuse them with an error naming the layer
// or site, and accept the trained model.
func TestCheckPlausible(t *testing.T) {
	p, test := trained(t, smallCNN, qat.W8A8(), 10)
	if err := CheckPlausible(p); err != nil {
		t.Fatalf("trained model: %v", err)
	}
	if q := crafted(t, p, func(*graph.Checkpoint) {}); CheckPlausible(q) != nil {
		t.Fatalf("unchanged checkpoint: %v", CheckPlausible(q))
	}
	for _, c := range []struct {
		name   string
		tensor string
		value  float64
		want   string
	}{
		{"huge weights", "param/conv1.weight", 1e30, `layer "conv1": folded weights element 0 is `},
		{"huge bias", "param/fc.bias", -1e30, `layer "fc": folded bias element 0 is -1e+30`},
		{"zero weights", "param/conv3.weight", 0, `layer "conv3": all 432 folded weights are zero`},
		{"NaN weights", "param/pw.weight", nanValue(), `layer "pw": folded weights element 0 is NaN`},
		{"zero range low", "quant/conv1.out.obs_lo", 0, ""},
		{"zero range", "quant/conv1.out.obs_hi", 0, `activation site "conv1.out" has a zero range`},
		{"huge range", "quant/fc.out.obs_hi", 1e30, `activation site "fc.out" has a range of`},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := crafted(t, p, func(ck *graph.Checkpoint) {
				fill(ck, c.tensor, c.value)(t)
				if c.name == "zero range" {
					fill(ck, "quant/conv1.out.obs_lo", 0)(t)
				}
			})
			err := CheckPlausible(q)
			if c.want == "" { // a zero lower bound alone is an ordinary range [0, hi]
				if err != nil {
					t.Errorf("%v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrImplausible) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CheckPlausible: %v, want an ErrImplausible containing %q", err, c.want)
			}
			if _, _, err := Export(q, Options{}, test.x[:8*test.c*test.h*test.w], 8, Thresholds{}); err == nil || !errors.Is(err, ErrImplausible) {
				t.Errorf("Export: %v", err)
			}
		})
	}
}

func nanValue() float64 { var z float64; return z / z }

// TestAccuracyCollapse (issue 14, item 7): with labels, the parity report carries the float
// accuracy beside the fake-quant one, and Check fails when quantization collapses the model
// although parity (runtime vs fake-quant) is perfect. The collapse is crafted: the observer range
// of the first layer's output shrunk to 1e-4 (every activation saturates), which is plausible on
// its own.
func TestAccuracyCollapse(t *testing.T) {
	p, test := trained(t, smallCNN, qat.W8A8(), 30)
	n := len(test.y)
	x := test.x
	good, err := ParityLabeled(p, mustLower(t, p), x, n, test.y)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: the float accuracy counted here with the float model's own evaluation.
	want, _, err := qat.Evaluate(p.Model, nil, test, 64)
	if err != nil {
		t.Fatal(err)
	}
	if good.FloatAccuracy != want {
		t.Errorf("float accuracy %v, qat.Evaluate %v", good.FloatAccuracy, want)
	}
	if !strings.Contains(good.String(), "; float ") {
		t.Errorf("report lacks the float accuracy:\n%s", good)
	}
	if err := good.Check(Thresholds{}); err != nil {
		t.Fatalf("trained model (float %.3f, fake-quant %.3f): %v", good.FloatAccuracy, good.FakeAccuracy, err)
	}
	if good.FloatAccuracy < 0.5 {
		t.Fatalf("float accuracy %.3f: the model must learn the synthetic task for the collapse to show", good.FloatAccuracy)
	}
	q := crafted(t, p, func(ck *graph.Checkpoint) {
		fill(ck, "quant/conv1.out.obs_lo", 0)(t)
		fill(ck, "quant/conv1.out.obs_hi", 1e-4)(t)
	})
	if err := CheckPlausible(q); err != nil {
		t.Fatalf("the crafted range is plausible on its own: %v", err)
	}
	bad, err := ParityLabeled(q, mustLower(t, q), x, n, test.y)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("float %.3f, fake-quant %.3f -> crafted %.3f (agreement %.3f) on %d examples", good.FloatAccuracy, good.FakeAccuracy, bad.FakeAccuracy, bad.Agreement, n)
	err = bad.Check(Thresholds{})
	if err == nil || !errors.Is(err, ErrImplausible) || !strings.Contains(err.Error(), "quantization collapsed the model") {
		t.Errorf("collapsed model (float %.3f, fake-quant %.3f, agreement %.3f): Check %v", bad.FloatAccuracy, bad.FakeAccuracy, bad.Agreement, err)
	}
	if err := bad.Check(Thresholds{MaxAccuracyDrop: -1, MinAgreement: -1, MinWithin1: -1}); err != nil {
		t.Errorf("checks off: %v", err)
	}
}

func mustLower(t *testing.T, p *qat.Prepared) *qmodel.Model {
	t.Helper()
	qm, err := Lower(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return qm
}
