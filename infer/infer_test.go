package infer

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

func randInt8s(r *rand.Rand, n, lo, hi int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(lo + r.IntN(hi-lo+1))
	}
	return v
}

func randScales(r *rand.Rand, n int, lo, hi float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(lo * math.Pow(hi/lo, r.Float64()))
	}
	return s
}

// checkModel runs m on a random batch with every intermediate tensor kept and checks each op's
// output against the float reference computed from that op's actual inputs. It returns the largest
// difference in LSB seen and the smallest share of unclamped outputs over the int8 ops.
func checkModel(t *testing.T, m *qmodel.Model, batch int, r *rand.Rand) (maxDiff, minInterior float64) {
	t.Helper()
	md, err := Load(m)
	if err != nil {
		t.Fatal(err)
	}
	s := md.NewSessionWith(SessionOptions{KeepIntermediate: true})
	inT := &m.Tensors[m.Inputs[0]]
	n := inT.NumElements() * batch
	var (
		inF  []float32
		inU  []byte
		outF []float32
	)
	switch inT.DType {
	case qmodel.Int8:
		in := randInt8s(r, n, -128, 127)
		if _, err := s.RunInt8(in, batch); err != nil {
			t.Fatal(err)
		}
	case qmodel.Uint8:
		inU = make([]byte, n)
		for i := range inU {
			inU[i] = byte(r.IntN(256))
		}
		if outF, err = s.RunUint8(inU, batch); err != nil {
			t.Fatal(err)
		}
	case qmodel.Float32:
		inF = make([]float32, n)
		for i := range inF {
			inF[i] = float32(r.NormFloat64() * 2)
		}
		if outF, err = s.Run(inF, batch); err != nil {
			t.Fatal(err)
		}
	}
	values := func(id int) []float64 {
		tt := &m.Tensors[id]
		if id == m.Inputs[0] && tt.DType != qmodel.Int8 {
			return realValues(tt, nil, inU, inF)
		}
		if tt.DType == qmodel.Float32 { // a Dequantize output inside the graph
			return realValues(tt, nil, nil, s.lanes[0].f32buf(s, id, tt.NumElements()))
		}
		q, _, err := s.Int8Tensor(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		return realValues(tt, q, nil, nil)
	}
	minInterior = 1
	for i := range m.Ops {
		op := &m.Ops[i]
		x := values(op.Inputs[0])
		var x2 []float64
		if op.Kind == qmodel.OpAdd {
			x2 = values(op.Inputs[1])
		}
		out := &m.Tensors[op.Outputs[0]]
		if out.DType == qmodel.Float32 { // Dequantize: exact
			q, _, _ := s.Int8Tensor(m.Tensors[op.Inputs[0]].Name)
			p := m.Tensors[op.Inputs[0]].Quant.Params()
			f := outF
			if op.Outputs[0] != m.Outputs[0] {
				f = s.lanes[0].f32buf(s, op.Outputs[0], out.NumElements())
			}
			for j, v := range f {
				if want := float32(int32(q[j])-p.ZeroPoint) * p.Scale; v != want {
					t.Fatalf("dequantize %d: %v want %v", j, v, want)
				}
			}
			continue
		}
		got, _, err := s.Int8Tensor(out.Name)
		if err != nil {
			t.Fatal(err)
		}
		d, in := checkOp(t, m, op, x, x2, got, batch)
		maxDiff = math.Max(maxDiff, d)
		minInterior = math.Min(minInterior, in)
	}
	return maxDiff, minInterior
}

// build builds a model and fails the test on error.
func build(t testing.TB, b *qmodel.Builder) *qmodel.Model {
	t.Helper()
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// outScale picks an output scale for op kind from a provisional model: it builds with scale 1,
// computes the float reference on random input and returns max|y|/100.
type convCase struct {
	name                 string
	h, w, c, oc, kh, kw  int
	sh, sw               int
	pt, pl, pb, pr       int
	groups               int
	act                  qmodel.Activation
	perTensor, int4, nob bool
}

func (cc convCase) model(r *rand.Rand, sOut float32, zIn, zOut int32, sIn float32, wv []int8, ws []float32, bias []int32) *qmodel.Builder {
	b := qmodel.NewBuilder(cc.name)
	x := b.Input("x", qmodel.Int8, []int{cc.h, cc.w, cc.c}, qmodel.PerTensor(sIn, zIn))
	wc := cc.c
	if cc.groups > 1 {
		wc = 1
	}
	w := qmodel.Weights{Values: wv, Shape: []int{cc.oc, cc.kh, cc.kw, wc}, Scales: ws, Int4: cc.int4}
	y := b.Conv2D("conv", x, w, bias, qmodel.Conv2DOptions{StrideH: cc.sh, StrideW: cc.sw, PadTop: cc.pt, PadLeft: cc.pl,
		PadBottom: cc.pb, PadRight: cc.pr, Groups: cc.groups, Act: cc.act}, quant.Params{Scale: sOut, ZeroPoint: zOut})
	b.Output(y)
	return b
}

// pickScale returns an output scale under which the reference outputs of m span about +-100 levels.
func pickScale(t *testing.T, m *qmodel.Model, r *rand.Rand, act qmodel.Activation) float32 {
	inT := &m.Tensors[m.Inputs[0]]
	x := realValues(inT, randInt8s(r, inT.NumElements()*2, -128, 127), nil, nil)
	y := refOp(t, m, &m.Ops[0], x, nil, 2)
	mx := 0.0
	for _, v := range y {
		mx = math.Max(mx, math.Abs(v))
	}
	if act == qmodel.ActReLU6 {
		mx = math.Min(mx, 8) // keep the 6 bound inside the int8 range for part of the cases
	}
	if mx == 0 {
		mx = 1
	}
	return float32(mx / 100)
}

func TestConv2DAgainstFloat(t *testing.T) {
	cases := []convCase{
		{name: "mnist-conv1", h: 28, w: 28, c: 1, oc: 8, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, act: qmodel.ActReLU},
		{name: "mnist-conv2", h: 14, w: 14, c: 8, oc: 16, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, act: qmodel.ActReLU},
		// The shapes of examples/mnist's bn-cnn (16, 32, 64 channels).
		{name: "bn-conv1", h: 28, w: 28, c: 1, oc: 16, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, act: qmodel.ActReLU},
		{name: "bn-conv2", h: 14, w: 14, c: 16, oc: 32, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, act: qmodel.ActReLU},
		{name: "bn-conv3", h: 7, w: 7, c: 32, oc: 64, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, act: qmodel.ActReLU},
		{name: "5x5-stride2-asym-pad", h: 9, w: 11, c: 3, oc: 5, kh: 5, kw: 5, sh: 2, sw: 2, pt: 2, pl: 1, pb: 1, pr: 2, perTensor: true},
		{name: "pointwise", h: 5, w: 4, c: 4, oc: 6, kh: 1, kw: 1},
		{name: "3x2-relu6-no-bias", h: 7, w: 6, c: 3, oc: 4, kh: 3, kw: 2, sh: 2, sw: 1, act: qmodel.ActReLU6, nob: true},
		{name: "depthwise", h: 8, w: 8, c: 6, oc: 6, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, groups: 6, act: qmodel.ActReLU6},
		{name: "depthwise-stride2", h: 9, w: 7, c: 5, oc: 5, kh: 3, kw: 3, sh: 2, sw: 2, pt: 1, pl: 1, groups: 5},
		{name: "int4", h: 6, w: 6, c: 4, oc: 3, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, int4: true},
		{name: "int4-depthwise", h: 6, w: 6, c: 4, oc: 4, kh: 3, kw: 3, groups: 4, int4: true},
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, cc := range cases {
		t.Run(cc.name, func(t *testing.T) {
			for _, zIn := range []int32{-128, 0, 37, 127} {
				sIn := randScales(r, 1, 0.005, 0.05)[0]
				wc := cc.c
				if cc.groups > 1 {
					wc = 1
				}
				lim := 127
				if cc.int4 {
					lim = 7
				}
				wv := randInt8s(r, cc.oc*cc.kh*cc.kw*wc, -lim, lim)
				ws := randScales(r, cc.oc, 0.001, 0.02)
				if cc.perTensor {
					ws = ws[:1]
				}
				var bias []int32
				if !cc.nob {
					bias = make([]int32, cc.oc)
					for i := range bias {
						bias[i] = int32(r.IntN(20001) - 10000)
					}
				}
				prov := build(t, cc.model(r, 1, zIn, 0, sIn, wv, ws, bias))
				sOut := pickScale(t, prov, r, cc.act)
				zOut := int32(r.IntN(61) - 30)
				m := build(t, cc.model(r, sOut, zIn, zOut, sIn, wv, ws, bias))
				d, interior := checkModel(t, m, 3, r)
				if interior < 0.3 {
					t.Errorf("zIn=%d: only %.0f%% of outputs unclamped: the test is too weak", zIn, 100*interior)
				}
				t.Logf("zIn=%d max diff %.3f LSB, %.0f%% unclamped", zIn, d, 100*interior)
			}
		})
	}
}

func TestFullyConnectedAgainstFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		name string
		k, n int
		act  qmodel.Activation
		int4 bool
	}{
		{"784x10", 784, 10, qmodel.ActNone, false},
		{"3136x10", 3136, 10, qmodel.ActNone, false},
		{"16x7-relu", 16, 7, qmodel.ActReLU, false},
		{"33x5-int4", 33, 5, qmodel.ActNone, true},
		{"1x3", 1, 3, qmodel.ActReLU6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := 127
			if tc.int4 {
				lim = 7
			}
			wv := randInt8s(r, tc.n*tc.k, -lim, lim)
			ws := randScales(r, tc.n, 0.001, 0.05)
			bias := make([]int32, tc.n)
			for i := range bias {
				bias[i] = int32(r.IntN(4001) - 2000)
			}
			zIn := int32(r.IntN(256) - 128)
			mk := func(sOut float32, zOut int32) *qmodel.Model {
				b := qmodel.NewBuilder(tc.name)
				x := b.Input("x", qmodel.Int8, []int{tc.k}, qmodel.PerTensor(0.02, zIn))
				b.Output(b.FullyConnected("fc", x, qmodel.Weights{Values: wv, Shape: []int{tc.n, tc.k}, Scales: ws, Int4: tc.int4},
					bias, tc.act, quant.Params{Scale: sOut, ZeroPoint: zOut}))
				return build(t, b)
			}
			m := mk(pickScale(t, mk(1, 0), r, tc.act), int32(r.IntN(41)-20))
			d, interior := checkModel(t, m, 5, r)
			if interior < 0.3 {
				t.Errorf("only %.0f%% unclamped", 100*interior)
			}
			t.Logf("max diff %.3f LSB", d)
		})
	}
}

func TestPoolsAgainstFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		name string
		kind qmodel.OpKind
		opt  qmodel.PoolOptions
	}{
		{"max2x2", qmodel.OpMaxPool2D, qmodel.PoolOptions{KernelH: 2, KernelW: 2}},
		{"max3x3-s2-pad1", qmodel.OpMaxPool2D, qmodel.PoolOptions{KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}},
		{"max-relu", qmodel.OpMaxPool2D, qmodel.PoolOptions{KernelH: 2, KernelW: 3, StrideH: 1, StrideW: 2, Act: qmodel.ActReLU}},
		{"avg2x2", qmodel.OpAvgPool2D, qmodel.PoolOptions{KernelH: 2, KernelW: 2}},
		{"avg3x3-s1-pad1", qmodel.OpAvgPool2D, qmodel.PoolOptions{KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}},
		{"avg-global-relu6", qmodel.OpAvgPool2D, qmodel.PoolOptions{KernelH: 7, KernelW: 5, Act: qmodel.ActReLU6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := qmodel.NewBuilder(tc.name)
			x := b.Input("x", qmodel.Int8, []int{7, 5, 6}, qmodel.PerTensor(0.05, -7))
			if tc.kind == qmodel.OpMaxPool2D {
				b.Output(b.MaxPool2D("pool", x, tc.opt))
			} else {
				b.Output(b.AvgPool2D("pool", x, tc.opt))
			}
			d, _ := checkModel(t, build(t, b), 4, r)
			if d > 0.5+1e-9 {
				t.Errorf("pool off by %.3f LSB, want <= 0.5 (exact rounding)", d)
			}
		})
	}
}

func TestAddAgainstFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		name            string
		sA, sConv, sOut float32
		act             qmodel.Activation
	}{
		{"similar-scales", 0.02, 0.03, 0.04, qmodel.ActNone},
		{"equal-scales", 0.02, 0.02, 0.02, qmodel.ActReLU},
		{"wide-ratio", 0.001, 0.1, 0.08, qmodel.ActNone},
		{"relu6", 0.05, 0.04, 0.03, qmodel.ActReLU6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// x -> 1x1 conv -> y; out = x + y (both Add inputs come from the graph).
			b := qmodel.NewBuilder(tc.name)
			x := b.Input("x", qmodel.Int8, []int{4, 4, 3}, qmodel.PerTensor(tc.sA, 5))
			y := b.Conv2D("conv", x, qmodel.Weights{Values: randInt8s(r, 9, -127, 127), Shape: []int{3, 1, 1, 3}, Scales: []float32{0.01}},
				nil, qmodel.Conv2DOptions{}, quant.Params{Scale: tc.sConv, ZeroPoint: -3})
			b.Output(b.Add("add", x, y, tc.act, quant.Params{Scale: tc.sOut, ZeroPoint: 10}))
			d, interior := checkModel(t, build(t, b), 3, r)
			t.Logf("max diff %.3f LSB, unclamped share %.2f", d, interior)
			if interior < 0.3 {
				t.Errorf("only %.0f%% of the outputs are inside the clamp bounds: the comparison says little", 100*interior)
			}
		})
	}
}

func TestQuantizeSoftmaxAgainstFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, sIn := range []float32{0.02, 0.1, 0.5} {
		// float input -> quantize -> softmax -> dequantize
		b := qmodel.NewBuilder("softmax")
		x := b.Input("x", qmodel.Float32, []int{10}, nil)
		q := b.Quantize("q", x, quant.Params{Scale: sIn, ZeroPoint: 3})
		b.Output(b.Dequantize("p", b.Softmax("softmax", q)))
		d, _ := checkModel(t, build(t, b), 6, r)
		t.Logf("scale %v: max diff %.3f LSB", sIn, d)
	}
	for _, tc := range []struct {
		sIn, sOut float32
		zIn, zOut int32
	}{{1.0 / 255, 1.0 / 255, 0, -128}, {0.5, 0.25, 10, 3}, {1, 3, 128, 0}} {
		b := qmodel.NewBuilder("u8")
		x := b.Input("x", qmodel.Uint8, []int{5, 5, 1}, qmodel.PerTensor(tc.sIn, tc.zIn))
		b.Output(b.Quantize("q", x, quant.Params{Scale: tc.sOut, ZeroPoint: tc.zOut}))
		if d, _ := checkModel(t, build(t, b), 2, r); d > 0.5+1e-9 {
			t.Errorf("uint8 quantize %+v off by %.3f LSB", tc, d)
		}
	}
}

// TestFloatInsideGraph runs a model that leaves the integer domain and re-enters it
// (Dequantize -> Quantize in the middle), checking every op.
func TestFloatInsideGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	b := qmodel.NewBuilder("requant")
	x := b.Input("x", qmodel.Float32, []int{12}, nil)
	q := b.Quantize("q1", x, quant.Params{Scale: 0.05, ZeroPoint: 2})
	h := b.FullyConnected("fc1", q, qmodel.Weights{Values: randInt8s(r, 8*12, -127, 127), Shape: []int{8, 12}, Scales: []float32{0.004}},
		nil, qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: -4})
	d := b.Dequantize("dq", h)
	q2 := b.Quantize("q2", d, quant.Params{Scale: 0.03, ZeroPoint: 7})
	y := b.FullyConnected("fc2", q2, qmodel.Weights{Values: randInt8s(r, 5*8, -127, 127), Shape: []int{5, 8}, Scales: []float32{0.01}},
		nil, qmodel.ActReLU, quant.Params{Scale: 0.02, ZeroPoint: -100})
	b.Output(y) // int8 output: Run dequantizes it
	m := build(t, b)
	checkModel(t, m, 4, r)

	md, err := Load(m)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 12*40)
	for i := range in {
		in[i] = float32(r.NormFloat64())
	}
	one := md.NewSession()
	want, err := one.Run(in, 40)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	multi := md.NewSessionWith(SessionOptions{Threads: 2})
	defer multi.Close()
	got, err := multi.Run(in, 40)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("threaded Run differs for a float-input, int8-output model")
	}
	// RunInt8 starts after q1 and, the output being int8, runs to the end.
	qin := make([]int8, len(in))
	for i, v := range in {
		qin[i] = int8(quant.QuantizeValue(v, 0.05, 2, -128, 127))
	}
	a, err := one.RunInt8(qin, 40)
	if err != nil {
		t.Fatal(err)
	}
	a = append([]int8(nil), a...)
	c, err := multi.RunInt8(qin, 40)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, c) {
		t.Fatal("threaded RunInt8 differs")
	}
	for i, v := range a {
		if f := quant.DequantizeValue(int32(v), float32(0.02), -100); f != want[i] {
			t.Fatalf("RunInt8 output %d dequantizes to %v, Run gave %v", i, f, want[i])
		}
	}
}
