package graph

import (
	"testing"

	"gorgonia.org/tensor"
)

func TestSingleLayerGradients(t *testing.T) {
	cases := map[string]func(m *Model){
		"linear":   func(m *Model) { m.Flatten("f"); m.Linear("fc", 3, true) },
		"conv":     func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1}) },
		"convb":    func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1, Bias: true}) },
		"bn":       func(m *Model) { m.BatchNorm("bn", 0, 0) },
		"relu":     func(m *Model) { m.ReLU("r") },
		"maxpool":  func(m *Model) { m.MaxPool2d("p", 2, 0, 0) },
		"avgpool":  func(m *Model) { m.AvgPool2d("p", 2, 1) },
		"gap":      func(m *Model) { m.GlobalAvgPool("p") },
		"dw":       func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Groups: 2}) },
		"convbn":   func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1}); m.BatchNorm("bn", 0, 0) },
		"convrelu": func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1}); m.ReLU("bn") },
		"convpool": func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1}); m.MaxPool2d("p", 2, 0, 0) },
		"convflat": func(m *Model) { m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1}); m.Flatten("f") },
		"convconv": func(m *Model) {
			m.Conv2d("c1", Conv{Out: 2, Kernel: 3, Pad: 1})
			m.Conv2d("c2", Conv{Out: 2, Kernel: 3, Pad: 1})
		},
		"reluconv":    func(m *Model) { m.ReLU("r"); m.Conv2d("c2", Conv{Out: 2, Kernel: 3, Pad: 1}) },
		"poolflatlin": func(m *Model) { m.MaxPool2d("p", 2, 0, 0); m.Flatten("f"); m.Linear("fc", 3, true) },
	}
	for name, f := range cases {
		m := NewModel("a", []int{2, 4, 4}, tensor.Float64, 1)
		f(m)
		n, vm, loss, grads, gx := lossNet(t, m, Options{Batch: 2, Train: true})
		run(t, vm, loss)
		for _, p := range m.Params() {
			if !p.Trainable {
				continue
			}
			g := append([]float64(nil), grads[p.Name].Value().Data().([]float64)...)
			checkGrad(t, name+"/"+p.Name, p.Value.Data().([]float64), g, vm, loss)
		}
		g := append([]float64(nil), gx.Value().Data().([]float64)...)
		checkGrad(t, name+"/input", n.XVal.Data().([]float64), g, vm, loss)
	}
}
