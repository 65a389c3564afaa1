package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The batch statistics read after a training run (for the running-stat update) must be those of
// the batch, even though the machine reuses registers for later nodes.
func TestBatchStatsAfterRun(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		m := NewModel("s", []int{3, 5, 5}, dt, 1)
		m.BatchNorm("bn", 0, 0.5)
		m.ReLU("r")
		m.Conv2d("c", Conv{Out: 4, Kernel: 3, Pad: 1})
		m.BatchNorm("bn2", 0, 0)
		m.ReLU("r2")
		m.Flatten("f")
		m.Linear("fc", 3, true)
		n, err := m.Build(Options{Batch: 4, Train: true})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 3))
		fill(n.XVal, rng)
		onehot := G.NewMatrix(n.G, dt, G.WithShape(4, 3), G.WithName("y"), G.WithInit(G.Zeroes()))
		loss := G.Must(CrossEntropy(n.Out, onehot))
		var wrt G.Nodes
		for _, p := range m.Params() {
			if p.Trainable {
				wrt = append(wrt, n.Params[p.Name])
			}
		}
		if _, err := G.Grad(loss, wrt...); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(n.G)
		for run := 0; run < 2; run++ {
			vm.Reset()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
		}
		x := make([]float64, 4*75)
		switch d := n.XVal.Data().(type) {
		case []float32:
			for i, v := range d {
				x[i] = float64(v)
			}
		case []float64:
			copy(x, d)
		}
		rm := append([]float64(nil), toF64(m.Param("bn.running_mean").Value.Data())...)
		n.UpdateRunningStats()
		got := toF64(m.Param("bn.running_mean").Value.Data())
		gotV := toF64(m.Param("bn.running_var").Value.Data())
		for c := 0; c < 3; c++ {
			var s, ss float64
			for b := 0; b < 4; b++ {
				for i := 0; i < 25; i++ {
					s += x[(b*3+c)*25+i]
				}
			}
			mean := s / 100
			for b := 0; b < 4; b++ {
				for i := 0; i < 25; i++ {
					d := x[(b*3+c)*25+i] - mean
					ss += d * d
				}
			}
			wantM := 0.5*rm[c] + 0.5*mean
			wantV := 0.5*1 + 0.5*ss/99
			if math.Abs(got[c]-wantM) > 1e-5 || math.Abs(gotV[c]-wantV) > 1e-4 {
				t.Fatalf("%v channel %d: running mean/var %v %v, want %v %v", dt, c, got[c], gotV[c], wantM, wantV)
			}
		}
		vm.Close()
	}
}

func toF64(v any) []float64 {
	switch d := v.(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return d
	}
	return nil
}
