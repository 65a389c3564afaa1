package fakequant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The weight formats equal a GGUF encode/decode round trip bit for bit; the activation format
// equals the formula evaluated here in float64 (exact for these products) with ties to even;
// the gradient is the identity.
func TestGGMLFakeQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rows, cols := 3, 64
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(6)-3))
	}
	x[5] = 0
	for _, f := range []GGMLFormat{GGMLWeightQ8_0, GGMLWeightQ4_0, GGMLActQ8_0, GGMLF16} {
		g := G.NewGraph()
		xv := tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(append([]float32(nil), x...)))
		xn := G.NewMatrix(g, tensor.Float32, G.WithShape(rows, cols), G.WithName("x"), G.WithValue(xv))
		y, err := GGMLFakeQuant(xn, f)
		if err != nil {
			t.Fatal(err)
		}
		cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, G.NewConstant(float32(3))))))
		if _, err := G.Grad(cost, xn); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		got := y.Value().Data().([]float32)
		var want []float32
		switch f {
		case GGMLWeightQ8_0, GGMLWeightQ4_0:
			typ := map[GGMLFormat]gguf.TensorType{GGMLWeightQ8_0: gguf.Q8_0, GGMLWeightQ4_0: gguf.Q4_0}[f]
			b, _ := gguf.Quantize(typ, x, cols)
			want, _ = gguf.Dequantize(typ, b, len(x))
		case GGMLActQ8_0:
			for blk := 0; blk < len(x); blk += 32 {
				var amax float64
				for _, v := range x[blk : blk+32] {
					amax = max(amax, math.Abs(float64(v)))
				}
				id := float32(127 / float32(amax))
				d := gguf.RoundF16(float32(amax) / 127)
				for _, v := range x[blk : blk+32] {
					want = append(want, d*float32(math.RoundToEven(float64(v*id))))
				}
			}
		case GGMLF16:
			for _, v := range x {
				want = append(want, gguf.RoundF16(v))
			}
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v element %d: %v, want %v", f, i, got[i], want[i])
			}
		}
		for i, gv := range xn.Deriv().Value().Data().([]float32) {
			if gv != 3 {
				t.Fatalf("%v: gradient %d is %v, want 3 (straight-through)", f, i, gv)
			}
		}
		vm.Close()
	}
	g := G.NewGraph()
	bad := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 48), G.WithName("bad"))
	if _, err := GGMLFakeQuant(bad, GGMLWeightQ8_0); err == nil {
		t.Error("rows of 48 accepted")
	}
}

// ScaleF16 rounds the learned scales to half precision (in the forward and in LearnedParams),
// and only LSQ with a symmetric scheme takes it.
func TestScaleF16(t *testing.T) {
	cfg := Config{Name: "w", Bits: 4, Method: LSQ, Granularity: PerGroup, Axis: 1, GroupSize: 32, ScaleF16: true}
	logs := []float64{-3.1, -7.77, 0.3, -20, 12}
	ps, err := LearnedParams(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		want := gguf.RoundF16(min(max(float32(math.Exp(logs[i])), quant.MinScale), 65504))
		if p.Scale != want || gguf.RoundF16(p.Scale) != p.Scale || p.Scale <= 0 {
			t.Errorf("log-scale %v: scale %v, want the half-precision %v", logs[i], p.Scale, want)
		}
	}
	cfg.ScaleF16 = false
	plain, _ := LearnedParams(cfg, logs)
	if plain[0].Scale == ps[0].Scale {
		t.Errorf("without ScaleF16 the scale %v is already a half-precision number: pick another test value", plain[0].Scale)
	}
	for _, c := range []Config{
		{Name: "o", Bits: 4, Method: Observed, ScaleF16: true},
		{Name: "a", Bits: 8, Method: LSQ, Scheme: AsymmetricSigned, ScaleF16: true},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v was accepted", c)
		}
	}
}
