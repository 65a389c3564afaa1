package qat

import (
	"math"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// biasQuantOp against hand-computed values: s_in = 0.5; channel 0 (s_w = 0.1, levels up to 7:
// stored as is) gives the bias scale 0.05; channel 1 (s_w = 0.02, levels up to 2: the exporter
// stores it as levels*3 with scale 0.02/3) gives 0.01/3.
func TestBiasQuantOpHandComputed(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(1, 2), G.WithName("x"), G.WithValue(tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float32{0, 0}))))
	w := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 2), G.WithName("w"), G.WithValue(tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float32{0.7, -0.3, 0.04, -0.02}))))
	qin, err := fakequant.New(g, x, fakequant.Config{Name: "in", Bits: 8, Method: fakequant.LSQ, Scheme: fakequant.AsymmetricSigned})
	if err != nil {
		t.Fatal(err)
	}
	qw, err := fakequant.New(g, w, fakequant.Config{Name: "w", Bits: 4, Method: fakequant.LSQ, Scheme: fakequant.SymmetricNarrow, Granularity: fakequant.PerChannel})
	if err != nil {
		t.Fatal(err)
	}
	if err := qin.SetParams([]quant.Params{{Scale: 0.5}}); err != nil {
		t.Fatal(err)
	}
	if err := qw.SetParams([]quant.Params{{Scale: 0.1}, {Scale: 0.02}}); err != nil {
		t.Fatal(err)
	}
	op := &biasQuantOp{in: qin, w: qw, bits: 4, shape: tensor.Shape{2}, wshape: tensor.Shape{2, 2}, name: "w"}
	b := tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{0.123, 0.0123}))
	wq := tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float32{0.7, -0.3, 0.04, -0.02}))
	v, err := op.Do(b, wq)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*tensor.Dense).Float32s()
	want := []float64{2 * 0.05, 4 * 0.01 / 3} // 0.123/0.05 = 2.46; 0.0123/(0.01/3) = 3.69
	for c := range want {
		if math.Abs(float64(got[c])-want[c]) > 1e-6 {
			t.Errorf("b_q[%d] = %v, want %v", c, got[c], want[c])
		}
	}
	if b.Float32s()[0] != 0.123 {
		t.Error("the input bias was modified")
	}
	// disabled input quantizer: pass through
	qin.SetEnabled(false)
	v, _ = op.Do(b, wq)
	if d := v.(*tensor.Dense).Float32s(); d[0] != 0.123 || d[1] != 0.0123 {
		t.Errorf("disabled: %v", d)
	}
	// straight-through gradient for the bias, none for the weight
	if d := op.DiffWRT(2); !d[0] || d[1] {
		t.Errorf("DiffWRT %v", d)
	}
}
