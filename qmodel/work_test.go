package qmodel

import (
	"strings"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// TestOpWorkHandComputed checks the per-op work of a small model against counts worked out by
// hand from the op definitions.
func TestOpWorkHandComputed(t *testing.T) {
	b := NewBuilder("work")
	x := b.Input("x", Float32, []int{6, 5, 2}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.05})
	// 3x3 conv, 2 -> 4 channels, stride 1, pad 1: output 6x5x4 = 120 elements,
	// each 3*3*2 = 18 MACs; im2col reads 6*5 patches of 18 = 540.
	c := b.Conv2D("c", q, Weights{Values: make([]int8, 4*3*3*2), Shape: []int{4, 3, 3, 2}, Scales: []float32{0.01}}, nil,
		Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, quant.Params{Scale: 0.05})
	// depthwise 3x3 on 4 channels, stride 2, no pad: output 2x2x4 = 16, each 9 MACs.
	d := b.Conv2D("d", c, Weights{Values: make([]int8, 4*3*3), Shape: []int{4, 3, 3, 1}, Scales: []float32{0.01}}, nil,
		Conv2DOptions{StrideH: 2, StrideW: 2, Groups: 4}, quant.Params{Scale: 0.05})
	// 2x2 max pool, stride 1: output 1x1x4 = 4 elements, 4 window reads each.
	p := b.MaxPool2D("p", d, PoolOptions{KernelH: 2, KernelW: 2, StrideH: 1, StrideW: 1})
	a := b.Add("a", p, p, ActNone, quant.Params{Scale: 0.1})
	r := b.Reshape("r", a, []int{4})
	// FC 4 -> 3: 12 MACs, 3 outputs.
	f := b.FullyConnected("f", r, Weights{Values: make([]int8, 12), Shape: []int{3, 4}, Scales: []float32{0.01}}, nil, ActNone, quant.Params{Scale: 0.1})
	s := b.Softmax("s", f)
	b.Output(b.Dequantize("y", s))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := []Work{
		{Elements: 60 + 60}, // Quantize: read 60, write 60
		{MACs: 120 * 18, WindowReads: 540, Elements: 120}, // Conv2D
		{MACs: 16 * 9, Elements: 16},                      // depthwise
		{WindowReads: 16, Elements: 4},                    // MaxPool2D
		{Elements: 4 + 4 + 4},                             // Add: two inputs, one output
		{Elements: 4 + 4},                                 // Reshape: a copy
		{MACs: 12, Elements: 3},                           // FullyConnected
		{Elements: 3 * 3},                                 // Softmax: max, exp-sum, write
		{Elements: 3 + 3},                                 // Dequantize
	}
	total, per := m.Work()
	if len(per) != len(want) {
		t.Fatalf("%d op works, want %d", len(per), len(want))
	}
	var sum Work
	for i := range want {
		if per[i] != want[i] {
			t.Errorf("op %d (%v): work %+v, want %+v", i, m.Ops[i].Kind, per[i], want[i])
		}
		sum.MACs += want[i].MACs
		sum.WindowReads += want[i].WindowReads
		sum.Elements += want[i].Elements
	}
	sum.Elements += 60 // the model input is read once by the caller's run
	if total != sum {
		t.Errorf("model work %+v, want %+v", total, sum)
	}
	if total.Total() != sum.MACs+sum.WindowReads+sum.Elements {
		t.Errorf("Total %d", total.Total())
	}
	if err := m.CheckWork(total.Total()); err != nil {
		t.Errorf("CheckWork at exactly the model's work: %v", err)
	}
	if err := m.CheckWork(total.Total() - 1); err == nil || !strings.Contains(err.Error(), "op 1 (Conv2D \"c\")") {
		t.Errorf("CheckWork one unit below: %v (want an error naming the heaviest op)", err)
	}
}

// TestEveryOpKindHasWork: an op kind added to the IR must add its work function (opWork) too, or
// the work budget would not bound it.
func TestEveryOpKindHasWork(t *testing.T) {
	for k := OpKind(1); k < 255; k++ {
		if strings.HasPrefix(k.String(), "op(") {
			continue // not a defined kind
		}
		if _, ok := opWork[k]; !ok {
			t.Errorf("op kind %v has no work function: add one to opWork in work.go (see its doc)", k)
		}
	}
}

// hostilePool returns a few-hundred-byte valid model whose max pool (or average pool) slides a
// 2048x2048 window over a 4096x4096 input: about 1.8e13 window reads per sample (issue 14).
func hostilePool(t testing.TB, kind OpKind) *Model {
	b := NewBuilder("pool-bomb")
	x := b.Input("x", Int8, []int{4096, 4096, 1}, PerTensor(0.1, 0))
	opt := PoolOptions{KernelH: 2048, KernelW: 2048, StrideH: 1, StrideW: 1}
	var p TensorID
	if kind == OpMaxPool2D {
		p = b.MaxPool2D("p", x, opt)
	} else {
		p = b.AvgPool2D("p", x, opt)
	}
	b.Output(p)
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hostileDepthwise returns a valid model of about 33 KB (int4 weights) whose depthwise 181x181
// kernels slide over a 2896x2896x2 input: about 5e11 multiply-accumulates per sample.
func hostileDepthwise(t testing.TB) *Model {
	b := NewBuilder("depthwise-bomb")
	x := b.Input("x", Int8, []int{2896, 2896, 2}, PerTensor(0.1, 0))
	w := Weights{Values: make([]int8, 2*181*181), Shape: []int{2, 181, 181, 1}, Scales: []float32{0.01}, Int4: true}
	b.Output(b.Conv2D("dw", x, w, nil, Conv2DOptions{Groups: 2}, quant.Params{Scale: 0.1}))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCheckWorkRejectsHostileModels (issue 14, item 1): small valid files that describe hours of
// computation fail the default work budget, with an error naming the op.
func TestCheckWorkRejectsHostileModels(t *testing.T) {
	for _, m := range []*Model{hostilePool(t, OpMaxPool2D), hostilePool(t, OpAvgPool2D), hostileDepthwise(t)} {
		enc, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		total, _ := m.Work()
		if total.Total() < 1e11 {
			t.Errorf("%s: work %d, expected > 1e11", m.Name, total.Total())
		}
		err = m.CheckWork(DefaultMaxWork)
		if err == nil || !strings.Contains(err.Error(), "work budget") || !strings.Contains(err.Error(), "op 0") {
			t.Errorf("%s (%d bytes): CheckWork: %v", m.Name, len(enc), err)
		}
		if err := m.CheckWork(-1); err != nil {
			t.Errorf("%s: no limit: %v", m.Name, err)
		}
	}
}
