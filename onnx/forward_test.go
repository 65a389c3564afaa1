package onnx

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx/ort"
	G "gorgonia.org/gorgonia"
)

// floatForward runs m in evaluation mode (float, no quantization) on x (NCHW, batch n) through
// the library's Gorgonia graph and returns the output.
func floatForward(t *testing.T, m *graph.Model, x []float32, n int) []float32 {
	t.Helper()
	net, err := m.Build(graph.Options{Batch: n})
	if err != nil {
		t.Fatal(err)
	}
	copy(net.XVal.Data().([]float32), x)
	vm := G.NewTapeMachine(net.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), net.Out.Value().Data().([]float32)...)
}

// randomize fills every parameter with values from rng: weights around He scale, biases and BN
// statistics away from their initial values, so that a writer or reader that drops or swaps
// one is caught.
func randomize(m *graph.Model, rng *rand.Rand) {
	for _, p := range m.Params() {
		d := p.Value.Data().([]float32)
		for i := range d {
			switch p.Role {
			case graph.RoleRunningVar:
				d[i] = 0.5 + rng.Float32()
			case graph.RoleGamma:
				d[i] = 0.5 + rng.Float32()
			case graph.RoleWeight:
				fan := p.Value.Shape().TotalSize() / p.Value.Shape()[0]
				d[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fan)))
			default:
				d[i] = float32(0.2 * rng.NormFloat64())
			}
		}
	}
}

func randomInput(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = rng.Float32()
	}
	return x
}

// findORT returns onnxruntime or skips the test with the reason.
func findORT(t *testing.T) *ort.Runtime {
	t.Helper()
	r, err := ort.Find()
	if err != nil {
		t.Skipf("onnxruntime check skipped: %v", err)
	}
	return r
}

// closeRel fails unless |got-want| <= tol*max(1, |want|) elementwise.
func closeRel(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]-want[i])) / math.Max(1, math.Abs(float64(want[i])))
		if d > worst {
			worst = d
		}
		if d > tol || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: element %d = %v, want %v (relative difference %.3g > %g)", what, i, got[i], want[i], d, tol)
		}
	}
	t.Logf("%s: %d values, largest relative difference %.3g", what, len(got), worst)
}
