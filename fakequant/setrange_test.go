package fakequant

import (
	"fmt"
	"math"
	"testing"

	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestSetRange checks the parameters Params reports after SetRange against hand-computed scales
// and zero points for every method and scheme. The first rows are the regression for
// SetRange on a learned-scale symmetric quantizer, which failed with "zero point -7 invalid"
// because the fixed zero point of SymmetricNarrow was taken as qmin instead of 0.
func TestSetRange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		lo, hi []float64
		want   []quant.Params
	}{
		{"lsq-symmetric-4bit", Config{Bits: 4}, []float64{-1.4}, []float64{0.7}, []quant.Params{{Scale: 0.2}}},
		{"lsq-symmetric-8bit-per-channel", Config{Bits: 8, Granularity: PerChannel},
			[]float64{-1.27, -0.5}, []float64{0.5, 2.54}, []quant.Params{{Scale: 0.01}, {Scale: 0.02}}},
		{"lsq-asymmetric-signed", Config{Bits: 8, Scheme: AsymmetricSigned}, []float64{-2.54}, []float64{1}, []quant.Params{{Scale: 0.02}}},
		{"lsq-asymmetric-unsigned", Config{Bits: 8, Scheme: AsymmetricUnsigned}, []float64{0}, []float64{5.1}, []quant.Params{{Scale: 0.02}}},
		{"lsq+-offset", Config{Bits: 8, Scheme: AsymmetricSigned, LearnOffset: true}, []float64{-1}, []float64{1.55},
			[]quant.Params{{Scale: 0.01, ZeroPoint: -28}}}, // 2.55/255; -128 - round(-1/0.01)
		{"pact-4bit", Config{Bits: 4, Method: PACT}, []float64{-3}, []float64{1.5}, []quant.Params{{Scale: 0.1}}},
		{"observed-symmetric", Config{Bits: 8, Method: Observed}, []float64{-0.635}, []float64{0.2}, []quant.Params{{Scale: 0.005}}},
		{"observed-asymmetric", Config{Bits: 8, Method: Observed, Scheme: AsymmetricSigned}, []float64{-1}, []float64{1.55},
			[]quant.Params{{Scale: 0.01, ZeroPoint: -28}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dt := range dtypes {
				cfg := tc.cfg
				cfg.Name = "q"
				g := G.NewGraph()
				x := G.NewMatrix(g, dt, G.WithShape(2, 4), G.WithName("x"))
				q, err := New(g, x, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := q.SetRange(tc.lo, tc.hi); err != nil {
					t.Fatalf("%v: SetRange: %v", dt, err)
				}
				ps, err := q.Params()
				if err != nil {
					t.Fatalf("%v: Params: %v", dt, err)
				}
				if len(ps) != len(tc.want) {
					t.Fatalf("%v: %d params, want %d", dt, len(ps), len(tc.want))
				}
				for i, p := range ps {
					w := tc.want[i]
					// LSQ keeps log(scale) in the graph's dtype: float32 costs about 1e-7 relative.
					if p.ZeroPoint != w.ZeroPoint || math.Abs(float64(p.Scale-w.Scale)) > 1e-5*float64(w.Scale) {
						t.Errorf("%v: slice %d: got %+v, want %+v", dt, i, p, w)
					}
				}
			}
		})
	}
}

// TestSetRangeErrors checks that bad ranges are reported as errors, not panics or silent state.
func TestSetRangeErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 4), G.WithName("x"))
	q, err := New(g, x, Config{Name: "q", Bits: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		lo, hi []float64
	}{
		{"length", []float64{-1, -1}, []float64{1, 1}},
		{"nan", []float64{math.NaN()}, []float64{1}},
		{"inf", []float64{-1}, []float64{math.Inf(1)}},
		{"empty", []float64{1}, []float64{-1}},
	} {
		if err := q.SetRange(tc.lo, tc.hi); err == nil {
			t.Errorf("%s: SetRange(%v, %v) gave no error", tc.name, tc.lo, tc.hi)
		}
	}
}

// ExampleQuantizer_SetRange calibrates 4-bit learned-scale (LSQ) weights from the per-channel
// min/max of their values: the scale is max|w|/7 per channel and the zero point 0.
func ExampleQuantizer_SetRange() {
	g := G.NewGraph()
	w := G.NewMatrix(g, tensor.Float64, G.WithShape(2, 3), G.WithName("fc.w"),
		G.WithValue(tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{0.7, -0.35, 0.1, 1.4, 0.2, -0.9}))))
	q, err := New(g, w, Config{Name: "fc.w", Bits: 4, Granularity: PerChannel, Axis: 0})
	if err != nil {
		fmt.Println(err)
		return
	}
	o := NewMinMaxObserver(q.Layout(), 0)
	if err := o.Observe(w.Value().Data().([]float64)); err != nil {
		fmt.Println(err)
		return
	}
	lo, hi, _ := o.Range()
	if err := q.SetRange(lo, hi); err != nil {
		fmt.Println(err)
		return
	}
	ps, _ := q.Params()
	fmt.Printf("%.3f %d, %.3f %d\n", ps[0].Scale, ps[0].ZeroPoint, ps[1].Scale, ps[1].ZeroPoint)
	// Output: 0.100 0, 0.200 0
}
