package export

import (
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// synth is a synthetic 10-class image set: class k has a bright blob at a class-dependent place
// plus noise, so a small CNN learns it in a few steps.
type synth struct {
	c, h, w int
	x       []float32
	y       []int
}

func newSynth(n, c, h, w int, seed uint64) *synth {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := &synth{c: c, h: h, w: w, x: make([]float32, n*c*h*w), y: make([]int, n)}
	per := c * h * w
	for i := 0; i < n; i++ {
		k := rng.IntN(10)
		s.y[i] = k
		cy, cx := 1+(k/5)*(h/2), 1+(k%5)*(w-2)/5
		for ch := 0; ch < c; ch++ {
			for yy := 0; yy < h; yy++ {
				for xx := 0; xx < w; xx++ {
					v := 0.2 * rng.Float32()
					if yy >= cy && yy < cy+h/3 && xx >= cx && xx < cx+2 {
						v += 0.8
					}
					s.x[i*per+(ch*h+yy)*w+xx] = v
				}
			}
		}
	}
	return s
}

func (s *synth) Len() int { return len(s.y) }

func (s *synth) Batch(idx []int, x []float32, y []int) {
	per := s.c * s.h * s.w
	for b, i := range idx {
		copy(x[b*per:(b+1)*per], s.x[i*per:(i+1)*per])
		y[b] = s.y[i]
	}
}

// smallCNN has every lowered construct: conv+BN+ReLU, depthwise conv+BN+ReLU6, max and average
// pooling, a residual Add+ReLU, flatten of a (C,H,W) tensor into a linear layer, dropout.
func smallCNN(seed uint64) *graph.Model {
	m := graph.NewModel("small", []int{2, 12, 12}, tensor.Float32, seed)
	m.Conv2d("conv1", graph.Conv{Out: 8, Kernel: 3, Pad: 1})
	m.BatchNorm("bn1", 0, 0)
	m.ReLU("relu1")
	m.MaxPool2d("pool1", 2, 2, 0)
	m.Conv2d("dw", graph.Conv{Out: 8, Kernel: 3, Pad: 1, Groups: 8, Bias: true})
	m.BatchNorm("bn2", 0, 0)
	m.ReLU6("relu2")
	m.Conv2d("pw", graph.Conv{Out: 8, Kernel: 1, Bias: true})
	m.Add("res", "pool1", "pw")
	m.ReLU("relu3")
	m.AvgPool2d("apool", 2, 2)
	m.Conv2d("conv3", graph.Conv{Out: 6, Kernel: 3, Stride: 2, Pad: 1, Bias: true})
	m.ReLU("relu4")
	m.Flatten("flat")
	m.Dropout("drop", 0.1)
	m.Linear("fc", 10, true)
	return m
}

// tailCNN has a standalone BatchNorm on the input image and on a flattened vector, a standalone
// ReLU after a max pool, a Linear with a folded BatchNorm1d and a residual Add of vectors.
func tailCNN(seed uint64) *graph.Model {
	m := graph.NewModel("tail", []int{2, 12, 12}, tensor.Float32, seed)
	m.BatchNorm("bn0", 0, 0)
	m.Conv2d("c1", graph.Conv{Out: 6, Kernel: 3, Pad: 1})
	m.MaxPool2d("mp", 2, 2, 0)
	m.ReLU("r")
	m.Conv2d("c2", graph.Conv{Out: 4, Kernel: 3, Stride: 2, Pad: 1, Bias: true})
	m.ReLU6("r6")
	m.Flatten("flat")
	m.BatchNorm("bnv", 0, 0)
	m.Linear("fc1", 16, false)
	m.BatchNorm("bn1", 0, 0)
	m.ReLU("fr")
	m.Linear("fc2", 16, true)
	m.Add("sum", "fr", "fc2")
	m.Linear("fc3", 10, true)
	return m
}

// gapCNN has a padded max pool over signed values and ends with a global average pool.
func gapCNN(seed uint64) *graph.Model {
	m := graph.NewModel("gap", []int{2, 12, 12}, tensor.Float32, seed)
	m.Conv2d("c1", graph.Conv{Out: 12, Kernel: 3, Pad: 1, Bias: true})
	m.MaxPool2d("mp", 3, 2, 1)
	m.Conv2d("c2", graph.Conv{Out: 12, Kernel: 3, Stride: 2, Bias: true})
	m.GlobalAvgPool("gap")
	m.Linear("fc", 10, true)
	return m
}

// groupCNN has a grouped convolution (2 groups) and a depthwise one with channel multiplier 2,
// which export lowers to dense convolutions with zero weights outside the groups.
func groupCNN(seed uint64) *graph.Model {
	m := graph.NewModel("groups", []int{2, 12, 12}, tensor.Float32, seed)
	m.Conv2d("c1", graph.Conv{Out: 4, Kernel: 3, Pad: 1, Bias: true})
	m.ReLU("r1")
	m.Conv2d("g2", graph.Conv{Out: 6, Kernel: 3, Pad: 1, Groups: 2})
	m.BatchNorm("bn", 0, 0)
	m.ReLU("r2")
	m.MaxPool2d("mp", 2, 2, 0)
	m.Conv2d("dwm", graph.Conv{Out: 12, Kernel: 3, Stride: 2, Groups: 6, Bias: true})
	m.Flatten("f")
	m.Linear("fc", 10, true)
	return m
}

// trained returns a model trained a few QAT steps on synthetic data with config c.
func trained(t testing.TB, mk func(uint64) *graph.Model, c qat.QConfig, steps int) (*qat.Prepared, *synth) {
	t.Helper()
	m := mk(1)
	p, err := qat.Prepare(m, c)
	if err != nil {
		t.Fatal(err)
	}
	data := newSynth(steps*16, m.Input[0], m.Input[1], m.Input[2], 3)
	tr, err := qat.NewTrainer(qat.Classify(m, data), p, qat.Config{Epochs: 1, BatchSize: 16, EvalBatch: 64, Seed: 2, Logger: quiet(), CalibBatches: 2, LR: 1e-2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	test := newSynth(64, m.Input[0], m.Input[1], m.Input[2], 4)
	if err := tr.Fit(qat.Images{Data: test}); err != nil {
		t.Fatal(err)
	}
	return p, test
}

// TestEndToEnd trains a small CNN a few QAT steps, exports it, writes the file atomically, decodes
// it, runs it in infer and checks parity with the fake-quant graph.
func TestEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(uint64) *graph.Model
		qc   qat.QConfig
		opt  Options
		th   Thresholds
		acc  int // minimum correct of 64
	}{
		{"W8A8", smallCNN, qat.W8A8(), Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		// below 8 bits the fake-quant graph simulates the runtime's int32 bias (qat.BiasAuto):
		// without it, 4-bit weights make the bias rounding worth up to about 0.1 LSB, and a
		// consumer whose scale is finer than its producer's amplifies upstream 1-LSB differences
		{"W4A8-LSQ", smallCNN, qat.W4A8LSQ(), Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		// activations of fewer than 8 bits: each requantizing op is followed by an identity
		// clamp op (see actParams)
		{"W4A4-LSQ", smallCNN, qat.W4A4LSQ(), Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		{"tail-W4A4-LSQ", tailCNN, qat.W4A4LSQ(), Options{}, Thresholds{MinWithin1: 0.99, MinAgreement: 0.99}, 32},
		// At 2 bits a float bias would flip a few percent of levels (see TestBiasSimulationParity);
		// the 8-bit first and last layers keep float biases (BiasAuto), worth < 1 LSB there.
		{"W2A2-LSQ-first-last-8", smallCNN, qat.W2A2().FirstLast8(smallCNN(1)), Options{}, Thresholds{MinWithin1: 0.99, MinAgreement: 0.99}, 16},
		{"tail-W8A8", tailCNN, qat.W8A8(), Options{}, Thresholds{MinWithin1: 0.995, MinAgreement: 0.999, MaxLSB: 2}, 32},
		{"groups-W8A8", groupCNN, qat.W8A8(), Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		{"gap-W8A8", gapCNN, qat.W8A8(), Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		{"W8A8-per-tensor-weights", smallCNN, perTensor(qat.W8A8()), Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		// PACT activations are unsigned [0,255] with zero point 0: exported as int8 with zero point -128
		{"W8A8-PACT", smallCNN, qat.W8A8().With("conv1", qat.Override{Act: &qat.Spec{Bits: 8, Method: fakequant.PACT}}).
			With("pw", qat.Override{Act: &qat.Spec{Bits: 8, Method: fakequant.PACT}}),
			Options{}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
		{"W8A8-uint8-softmax", smallCNN, qat.W8A8(), Options{Uint8Input: &quant.Params{Scale: 1.0 / 255}, Softmax: true}, Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 2}, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, test := trained(t, tc.mk, tc.qc, 60)
			qm, rep, err := Export(p, tc.opt, test.x, test.Len(), tc.th)
			if err != nil {
				t.Fatalf("%v\n%v", err, rep)
			}
			t.Logf("\n%v", rep)
			if want := countRequant(p.Model); len(rep.Layers) != want {
				t.Errorf("%d layers compared, want %d (input + requantizing groups)", len(rep.Layers), want)
			}
			if rep.Layers[0].Exact != 1 {
				t.Errorf("the quantized input differs: %+v", rep.Layers[0])
			}
			// every op alone, on the fake-quant graph's inputs, is within 1 LSB
			for _, l := range rep.Layers[1:] {
				add := p.Model.Layer(strings.TrimSuffix(l.Site, ".out")).Kind == graph.KindAdd
				if add != (l.LocalMaxLSB < 0) {
					t.Errorf("%s: layer-alone comparison measured=%v for kind add=%v", l.Site, l.LocalMaxLSB >= 0, add)
				}
			}
			if err := rep.Check(Thresholds{MinWithin1: 1e-9, MinAgreement: 1e-9, MaxLocalLSB: 1}); err != nil {
				t.Error(err)
			}
			path := filepath.Join(t.TempDir(), "m.qm")
			if err := qmodel.WriteFile(path, qm); err != nil {
				t.Fatal(err)
			}
			md, err := infer.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := infer.Load(qm)
			if err != nil {
				t.Fatal(err)
			}
			in := toNHWC(test.x, test.Len(), p.Model.Input)
			var a, b []float32
			if tc.opt.Uint8Input != nil {
				u := make([]byte, len(in))
				for i, v := range in {
					u[i] = byte(quant.QuantizeValue(v, float32(1.0/255), 0, 0, 255))
				}
				a, err = md.NewSession().RunUint8(u, test.Len())
				if err == nil {
					b, err = ref.NewSession().RunUint8(u, test.Len())
				}
			} else {
				a, err = md.NewSession().Run(in, test.Len())
				if err == nil {
					b, err = ref.NewSession().Run(in, test.Len())
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a, b) {
				t.Fatal("the decoded file computes different outputs than the in-memory model")
			}
			// the QAT model must have learnt something, so that agreement is meaningful
			var acc int
			k := len(a) / test.Len()
			for i := range test.y {
				if argmax(a[i*k:(i+1)*k]) == test.y[i] {
					acc++
				}
			}
			if acc < tc.acc {
				t.Errorf("integer model accuracy %d/%d on the synthetic task", acc, test.Len())
			} else {
				t.Logf("integer model accuracy %d/%d", acc, test.Len())
			}
		})
	}
}

func perTensor(c qat.QConfig) qat.QConfig {
	c.Weight.PerTensor = true
	c.Name += "-pt"
	return c
}

func countRequant(m *graph.Model) int {
	n := 1
	for _, g := range m.Groups() {
		if g.Requantizes() {
			n++
		}
	}
	return n
}

// TestWeightsEqualFakeQuant checks that the exported integer weights, transposed back to the
// training layout (undoing the flatten permutation for fc), are the levels of the weight
// fake-quantizers' outputs in the evaluation graph (times the rescale factor k, see
// Options.NoWeightRescale), and that with k = 1 the dequantized weights equal the fake-quantized
// ones bit for bit.
func TestWeightsEqualFakeQuant(t *testing.T) {
	for _, tc := range []struct {
		qc      qat.QConfig
		rescale bool
	}{{qat.W8A8(), true}, {qat.W4A8LSQ(), true}, {qat.W2A2().FirstLast8(smallCNN(1)), true}, {qat.W2A2().FirstLast8(smallCNN(1)), false}} {
		p, _ := trained(t, smallCNN, tc.qc, 10)
		qm, err := Lower(p, Options{NoWeightRescale: !tc.rescale})
		if err != nil {
			t.Fatal(err)
		}
		sp, err := SiteParams(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := newEvalRun(p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.run(); err != nil {
			t.Fatal(err)
		}
		var rescaled int
		for _, g := range p.Model.Groups() {
			if !g.Weighted() {
				continue
			}
			site := sp[g.Op+".weight"]
			fake := r.n.Sites[g.Op+".weight"].Value().Data().([]float32)
			wt := &qm.Tensors[qm.TensorByName(g.Op+"/weights")]
			if want := site.Bits <= 4; want != (wt.DType == qmodel.Int4) {
				t.Errorf("%s: %v weights for %d bits", g.Op, wt.DType, site.Bits)
			}
			v, err := wt.Int8Values()
			if err != nil {
				t.Fatal(err)
			}
			ws := p.Model.LayerParam(g.Op, graph.RoleWeight).Value.Shape()
			n := ws[0]
			per := len(v) / n
			for i := range fake {
				o, j := i/per, i%per // training index: row o, column j
				var src int
				if len(ws) == 4 { // OIHW (o, ic, h, w) from [O,KH,KW,IC]
					ic, kh, kw := ws[1], ws[2], ws[3]
					c, h, w := j/(kh*kw), (j/kw)%kh, j%kw
					src = o*per + (h*kw+w)*ic + c
				} else { // fc after the flatten of conv3's (C,H,W) output: training column c*H*W+hw
					chw := p.Model.Layer("conv3").OutShape
					c, hw := j/(chw[1]*chw[2]), j%(chw[1]*chw[2])
					src = o*per + hw*chw[0] + c
				}
				st := site.Params[min(o, len(site.Params)-1)].Scale
				se := wt.Quant.Scales[min(o, len(wt.Quant.Scales)-1)]
				k := int32(quant.Round(float64(st) / float64(se)))
				if !tc.rescale && k != 1 {
					t.Fatalf("%s: rescaled with NoWeightRescale", g.Op)
				}
				if k != 1 {
					rescaled++
				}
				if math.Abs(float64(se)*float64(k)-float64(st)) > 1e-6*float64(st) {
					t.Fatalf("%s channel %d: exported scale %v x %d != trained %v", g.Op, o, se, k, st)
				}
				qf := quant.QuantizeValue(fake[i], st, 0, site.Range.Min, site.Range.Max)
				if int32(v[src]) != k*qf {
					t.Fatalf("%s %s: weight %d: exported level %d, fake-quant level %d (k %d)", tc.qc.Name, g.Op, i, v[src], qf, k)
				}
				if k == 1 && quant.DequantizeValue(int32(v[src]), se, 0) != fake[i] {
					t.Fatalf("%s %s: weight %d: exported %v, fake-quant %v", tc.qc.Name, g.Op, i, quant.DequantizeValue(int32(v[src]), se, 0), fake[i])
				}
			}
		}
		if tc.rescale && tc.qc.Weight.Bits == 2 && rescaled == 0 {
			t.Errorf("%s: 2-bit weights were not rescaled", tc.qc.Name)
		}
		r.close()
	}
}

// TestFoldMatchesUnfolded compares the float eval output of a Conv-BN model with that of a twin
// without BN whose conv carries the folded weight and bias (within 1e-5).
func TestFoldMatchesUnfolded(t *testing.T) {
	mk := func(bn bool) *graph.Model {
		m := graph.NewModel("fold", []int{3, 8, 8}, tensor.Float32, 5)
		m.Conv2d("c1", graph.Conv{Out: 5, Kernel: 3, Pad: 1, Bias: !bn || true})
		if bn {
			m.BatchNorm("bn1", 1e-3, 0)
		}
		m.ReLU("r1")
		m.Conv2d("dw", graph.Conv{Out: 5, Kernel: 3, Groups: 5})
		if bn {
			m.BatchNorm("bn2", 0, 0)
		}
		m.Flatten("f")
		m.Linear("fc", 4, false)
		if bn {
			m.BatchNorm("bn3", 0, 0)
		}
		return m
	}
	m := mk(true)
	rng := rand.New(rand.NewPCG(9, 9))
	for _, p := range m.Params() {
		d := p.Value.Data().([]float32)
		for i := range d {
			switch p.Role {
			case graph.RoleRunningVar:
				d[i] = 0.2 + 2*rng.Float32()
			case graph.RoleGamma:
				d[i] = 0.5 + rng.Float32()
			default:
				d[i] = rng.Float32() - 0.5
			}
		}
	}
	twin := graph.NewModel("twin", []int{3, 8, 8}, tensor.Float32, 1)
	twin.Conv2d("c1", graph.Conv{Out: 5, Kernel: 3, Pad: 1, Bias: true})
	twin.ReLU("r1")
	twin.Conv2d("dw", graph.Conv{Out: 5, Kernel: 3, Groups: 5, Bias: true})
	twin.Flatten("f")
	twin.Linear("fc", 4, true)
	for _, g := range m.Groups() {
		if !g.Weighted() {
			continue
		}
		f, err := Fold(m, g)
		if err != nil {
			t.Fatal(err)
		}
		copy(twin.LayerParam(g.Op, graph.RoleWeight).Value.Data().([]float32), f.Weight)
		copy(twin.LayerParam(g.Op, graph.RoleBias).Value.Data().([]float32), f.Bias)
	}
	const B = 4
	x := make([]float32, B*3*8*8)
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
	run := func(m *graph.Model) []float32 {
		n, err := m.Build(graph.Options{Batch: B})
		if err != nil {
			t.Fatal(err)
		}
		copy(n.XVal.Data().([]float32), x)
		vm := G.NewTapeMachine(n.G)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), n.Out.Value().Data().([]float32)...)
	}
	a, b := run(m), run(twin)
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > 1e-5*max(1, math.Abs(float64(a[i]))) {
			t.Fatalf("output %d: unfolded %v, folded %v", i, a[i], b[i])
		}
	}
	// hand-computed single value: channel 0 of bn1
	g := m.Groups()[0]
	f, _ := Fold(m, g)
	gm := m.LayerParam("bn1", graph.RoleGamma).Value.Data().([]float32)[0]
	rv := m.LayerParam("bn1", graph.RoleRunningVar).Value.Data().([]float32)[0]
	mu := m.LayerParam("bn1", graph.RoleRunningMean).Value.Data().([]float32)[0]
	be := m.LayerParam("bn1", graph.RoleBeta).Value.Data().([]float32)[0]
	b0 := m.LayerParam("c1", graph.RoleBias).Value.Data().([]float32)[0]
	w0 := m.LayerParam("c1", graph.RoleWeight).Value.Data().([]float32)[0]
	sig := math.Sqrt(float64(rv) + 1e-3)
	if want := float64(w0) * float64(gm) / sig; math.Abs(float64(f.Weight[0])-want) > 1e-6 {
		t.Errorf("folded weight %v want %v", f.Weight[0], want)
	}
	if want := float64(be) + (float64(b0)-float64(mu))*float64(gm)/sig; math.Abs(float64(f.Bias[0])-want) > 1e-6 {
		t.Errorf("folded bias %v want %v", f.Bias[0], want)
	}
}

// TestInt4Size checks that int4 weights take about 1/8 of their float32 size.
func TestInt4Size(t *testing.T) {
	mk := func(seed uint64) *graph.Model {
		m := graph.NewModel("mlp", []int{1, 8, 8}, tensor.Float32, seed)
		m.Flatten("f")
		m.Linear("fc1", 128, true)
		m.ReLU("r1")
		m.Linear("fc2", 10, true)
		return m
	}
	for _, tc := range []struct {
		qc        qat.QConfig
		min, max  float64
		wantDType qmodel.DType
	}{{qat.W4A8LSQ(), 7.9, 8.01, qmodel.Int4}, {qat.W8A8(), 3.95, 4.01, qmodel.Int8}} {
		p, _ := trained(t, mk, tc.qc, 4)
		qm, err := Lower(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var wBytes, n int
		for _, tt := range qm.Tensors {
			if strings.HasSuffix(tt.Name, "/weights") {
				if tt.DType != tc.wantDType {
					t.Errorf("%s: %v", tt.Name, tt.DType)
				}
				wBytes += len(tt.Data)
				n += tt.NumElements()
			}
		}
		ratio := float64(4*n) / float64(wBytes)
		enc, err := qmodel.Encode(qm)
		if err != nil {
			t.Fatal(err)
		}
		var floatBytes int
		for _, pp := range p.Model.Params() {
			floatBytes += 4 * pp.Value.Shape().TotalSize()
		}
		t.Logf("%s: weights %d B (float32 %d B, %.2fx smaller); file %d B vs float32 params %d B (%.2fx)",
			tc.qc.Name, wBytes, 4*n, ratio, len(enc), floatBytes, float64(floatBytes)/float64(len(enc)))
		if ratio < tc.min || ratio > tc.max {
			t.Errorf("%s: weight size ratio %.3f, want [%v, %v]", tc.qc.Name, ratio, tc.min, tc.max)
		}
	}
}

// TestUnsupported checks that models the runtime cannot express give a clear error naming the
// problem (and the layer).
func TestUnsupported(t *testing.T) {
	img := func(name string) *graph.Model {
		return graph.NewModel(name, []int{4, 6, 6}, tensor.Float32, 1)
	}
	for _, tc := range []struct {
		name string
		mk   func() *graph.Model
		qc   qat.QConfig
		want string
	}{
		{"flatten output", func() *graph.Model {
			m := img("f")
			m.Conv2d("c", graph.Conv{Out: 4, Kernel: 3})
			m.Flatten("flat")
			return m
		}, qat.W8A8(), `"flat"`},
		{"float activations", func() *graph.Model {
			m := img("fa")
			m.Conv2d("c", graph.Conv{Out: 4, Kernel: 3})
			return m
		}, qat.QConfig{Name: "wonly", Weight: qat.W8A8().Weight, Act: qat.Spec{Float: true}}, "not quantized"},
		{"flatten into add", func() *graph.Model {
			m := img("fa2")
			m.Flatten("f1")
			m.Linear("l", 144, false)
			m.Add("sum", "f1", "l")
			m.Linear("out", 3, false)
			return m
		}, qat.W8A8(), `"sum"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mk()
			if sh := m.OutShape(); len(sh) != 1 { // qat's trainer wants class scores
				m.Flatten("")
				m.Linear("", 3, true)
			}
			if err := m.Err(); err != nil {
				t.Fatal(err)
			}
			p, err := qat.Prepare(m, tc.qc)
			if err != nil {
				t.Fatal(err)
			}
			if err := initQuant(p); err != nil {
				t.Fatal(err)
			}
			_, err = Lower(p, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want ErrUnsupported mentioning %s", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// initQuant calibrates the observers of p on random data (one batch), so every site has state.
func initQuant(p *qat.Prepared) error {
	m := p.Model
	d := newSynth(16, m.Input[0], m.Input[1], m.Input[2], 1)
	for i := range d.y { // labels within the model's classes (the trainer rejects others)
		d.y[i] %= m.OutShape()[0]
	}
	tr, err := qat.NewTrainer(qat.Classify(m, d), p, qat.Config{Epochs: 1, BatchSize: 8, EvalBatch: 8, Logger: quiet(), CalibBatches: 1, StopAfter: 1})
	if err != nil {
		return err
	}
	defer tr.Close()
	return tr.Fit(qat.Images{Data: d})
}

func TestParityFailsNamingLayer(t *testing.T) {
	p, test := trained(t, smallCNN, qat.W8A8(), 10)
	qm, err := Lower(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// corrupt one weight of conv3: its output must be the first layer to fail
	wt := &qm.Tensors[qm.TensorByName("conv3/weights")]
	for i := range wt.Data {
		wt.Data[i] = byte(-int8(wt.Data[i]))
	}
	rep, err := Parity(p, qm, test.x, test.Len())
	if err != nil {
		t.Fatal(err)
	}
	err = rep.Check(Thresholds{})
	if !errors.Is(err, ErrParity) || !strings.Contains(err.Error(), `"conv3.out"`) {
		t.Fatalf("Check: %v\n%v", err, rep)
	}
	// a permissive per-layer threshold passes every layer (also the corrupted one), and the
	// agreement is still checked (how many predictions of the corrupted model agree is luck:
	// require all of them to see the check fire, none to see it pass)
	if err := rep.Check(Thresholds{MinWithin1: 1e-9, MinAgreement: -1}); err != nil {
		t.Fatalf("permissive thresholds: %v", err)
	}
	if err := rep.Check(Thresholds{MinWithin1: 1e-9, MinAgreement: 1}); !errors.Is(err, ErrParity) || !strings.Contains(err.Error(), "predictions agree") {
		t.Fatalf("agreement 1 with a corrupted layer: %v", err)
	}
}

// TestFromCheckpoint exports a trainer checkpoint into a freshly built model and checks that the
// result is byte-identical to exporting the live trained model.
func TestFromCheckpoint(t *testing.T) {
	for _, qc := range []qat.QConfig{qat.W8A8(), qat.W4A8LSQ()} {
		m := smallCNN(1)
		p, err := qat.Prepare(m, qc)
		if err != nil {
			t.Fatal(err)
		}
		data := newSynth(160, 2, 12, 12, 3)
		tr, err := qat.NewTrainer(qat.Classify(m, data), p, qat.Config{BatchSize: 16, EvalBatch: 32, Seed: 2, Logger: quiet(), CalibBatches: 2, LR: 1e-2})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Fit(qat.Images{Data: data}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "ck.bin")
		if err := tr.SaveCheckpoint(path); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		live, err := Lower(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p2, fromCk, err := FromCheckpoint(path, smallCNN(99), qc, Options{})
		if err != nil {
			t.Fatal(err)
		}
		a, err := qmodel.Encode(live)
		if err != nil {
			t.Fatal(err)
		}
		b, err := qmodel.Encode(fromCk)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, b) {
			t.Fatalf("%s: checkpoint export differs from the live export", qc.Name)
		}
		// Restore reads the QConfig from the checkpoint (and the architecture).
		p3, err := Restore(path, smallCNN(98), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p3.Config, qc) {
			t.Fatalf("restored QConfig %+v, want %+v", p3.Config, qc)
		}
		fromRestore, err := Lower(p3, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := qmodel.Encode(fromRestore); err != nil || !slices.Equal(a, c) {
			t.Fatalf("%s: Restore export differs from the live export (%v)", qc.Name, err)
		}
		// Without a model Restore rebuilds the architecture the checkpoint records (smallCNN is
		// not among qat's named models) and exports the same bytes.
		p4, err := Restore(path, nil, nil)
		if err != nil {
			t.Fatalf("Restore from the recorded architecture: %v", err)
		}
		fromArch, err := Lower(p4, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := qmodel.Encode(fromArch); err != nil || !slices.Equal(a, c) {
			t.Fatalf("%s: export of the rebuilt architecture differs from the live export (%v)", qc.Name, err)
		}
		rep, err := Parity(p2, fromCk, data.x[:32*288], 32)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Check(Thresholds{MinWithin1: 0.9, MinAgreement: 0.9}); err != nil { // loose for W4A8: see TestEndToEnd
			t.Fatalf("%v\n%v", err, rep)
		}
	}
	// wrong architecture: a clear error
	m := smallCNN(1)
	p, _ := qat.Prepare(m, qat.W8A8())
	if err := initQuant(p); err != nil {
		t.Fatal(err)
	}
	ck := &graph.Checkpoint{}
	m.SaveState(ck)
	ck.Meta["model"] = "other"
	path := filepath.Join(t.TempDir(), "ck.bin")
	if err := graph.SaveCheckpoint(path, ck); err != nil {
		t.Fatal(err)
	}
	if _, _, err := FromCheckpoint(path, smallCNN(1), qat.W8A8(), Options{}); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("model name mismatch: %v", err)
	}
	if _, _, err := FromCheckpoint(filepath.Join(t.TempDir(), "missing"), smallCNN(1), qat.W8A8(), Options{}); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestParityChunks checks that a batch larger than ParityChunk is split (with a padded last
// chunk) and aggregated like the separate runs, and that accuracies are measured from labels.
func TestParityChunks(t *testing.T) {
	p, _ := trained(t, smallCNN, qat.W8A8(), 30)
	qm, err := Lower(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n, per = ParityChunk + 44, 2 * 12 * 12
	d := newSynth(n, 2, 12, 12, 11)
	all, err := ParityLabeled(p, qm, d.x, n, d.y)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Parity(p, qm, d.x[:ParityChunk*per], ParityChunk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parity(p, qm, d.x[ParityChunk*per:], n-ParityChunk)
	if err != nil {
		t.Fatal(err)
	}
	if all.Agree != a.Agree+b.Agree {
		t.Errorf("agree %d != %d + %d", all.Agree, a.Agree, b.Agree)
	}
	for i, l := range all.Layers {
		if l.Elements != a.Layers[i].Elements+b.Layers[i].Elements || l.MaxLSB != max(a.Layers[i].MaxLSB, b.Layers[i].MaxLSB) {
			t.Errorf("%s: %+v from %+v and %+v", l.Site, l, a.Layers[i], b.Layers[i])
		}
		ex := (a.Layers[i].Exact*float64(a.Layers[i].Elements) + b.Layers[i].Exact*float64(b.Layers[i].Elements)) / float64(l.Elements)
		if math.Abs(ex-l.Exact) > 1e-9 {
			t.Errorf("%s: exact share %v, want %v", l.Site, l.Exact, ex)
		}
	}
	// integer accuracy recomputed with infer directly
	md, err := infer.Load(qm)
	if err != nil {
		t.Fatal(err)
	}
	out, err := md.NewSession().Run(toNHWC(d.x, n, p.Model.Input), n)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i := 0; i < n; i++ {
		if argmax(out[i*10:(i+1)*10]) == d.y[i] {
			ok++
		}
	}
	if !all.Labeled || all.IntAccuracy != float64(ok)/n {
		t.Errorf("int accuracy %v, want %v", all.IntAccuracy, float64(ok)/n)
	}
	if !strings.Contains(all.String(), "accuracy: fake-quant") {
		t.Errorf("report without accuracy line:\n%v", all)
	}
	if _, err := ParityLabeled(p, qm, d.x, n, d.y[:3]); err == nil {
		t.Error("wrong label count accepted")
	}
	if _, err := Parity(p, qm, d.x[:5], 1); err == nil {
		t.Error("wrong input length accepted")
	}
}

// TestLowerParamsErrors covers bad quantizer state handed to LowerParams directly.
func TestLowerParamsErrors(t *testing.T) {
	mk := func(dt tensor.Dtype) *graph.Model {
		m := graph.NewModel("tiny", []int{1, 4, 4}, dt, 1)
		m.Conv2d("c", graph.Conv{Out: 2, Kernel: 3})
		m.Flatten("f")
		m.Linear("fc", 3, true)
		return m
	}
	act := func(s float32, z int32) qat.SiteParams {
		return qat.SiteParams{Bits: 8, Range: quant.Signed(8), Params: []quant.Params{{Scale: s, ZeroPoint: z}}}
	}
	good := func() map[string]qat.SiteParams {
		return map[string]qat.SiteParams{
			"input":     act(1.0/255, -128),
			"c.weight":  {Bits: 8, Range: quant.NarrowSigned(8), Params: []quant.Params{{Scale: 0.01}, {Scale: 0.02}}},
			"c.out":     act(0.05, 3),
			"fc.weight": {Bits: 8, Range: quant.NarrowSigned(8), Params: []quant.Params{{Scale: 0.01}}},
			"fc.out":    act(0.1, 0),
		}
	}
	if _, err := LowerParams(mk(tensor.Float32), good(), Options{}); err != nil {
		t.Fatalf("valid parameters: %v", err)
	}
	for _, tc := range []struct {
		name string
		m    *graph.Model
		edit func(map[string]qat.SiteParams)
		want string
	}{
		{"float64 model", mk(tensor.Float64), func(map[string]qat.SiteParams) {}, "float32"},
		{"missing site", mk(tensor.Float32), func(sp map[string]qat.SiteParams) { delete(sp, "c.out") }, `"c.out"`},
		{"weight zero point", mk(tensor.Float32), func(sp map[string]qat.SiteParams) {
			sp["c.weight"] = qat.SiteParams{Bits: 8, Range: quant.NarrowSigned(8), Params: []quant.Params{{Scale: 0.01, ZeroPoint: 1}, {Scale: 0.01}}}
		}, "zero point"},
		{"asymmetric weight range", mk(tensor.Float32), func(sp map[string]qat.SiteParams) {
			sp["c.weight"] = qat.SiteParams{Bits: 8, Range: quant.Signed(8), Params: []quant.Params{{Scale: 0.01}}}
		}, "symmetric"},
		{"wrong channel count", mk(tensor.Float32), func(sp map[string]qat.SiteParams) {
			sp["c.weight"] = qat.SiteParams{Bits: 8, Range: quant.NarrowSigned(8), Params: []quant.Params{{Scale: 0.01}, {Scale: 0.01}, {Scale: 0.01}}}
		}, "3 scales for 2 output channels"},
		{"per-channel activation", mk(tensor.Float32), func(sp map[string]qat.SiteParams) {
			sp["c.out"] = qat.SiteParams{Bits: 8, Range: quant.Signed(8), Params: []quant.Params{{Scale: 1}, {Scale: 1}}}
		}, "per tensor"},
		{"zero scale", mk(tensor.Float32), func(sp map[string]qat.SiteParams) { sp["fc.out"] = act(0, 0) }, "scale"},
		{"zero point outside range", mk(tensor.Float32), func(sp map[string]qat.SiteParams) { sp["c.out"] = act(0.1, 200) }, "zero point 200"},
	} {
		sp := good()
		tc.edit(sp)
		_, err := LowerParams(tc.m, sp, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %s", tc.name, err, tc.want)
		}
	}
	if _, err := LowerParams(mk(tensor.Float32), good(), Options{Uint8Input: &quant.Params{Scale: 1, ZeroPoint: 300}}); err == nil {
		t.Error("uint8 input zero point 300 accepted")
	}
}
