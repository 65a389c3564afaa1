package qat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// convBNReLUPoolLinear is the Conv-BN-ReLU-Pool-Linear model of the Prepare test.
func convBNReLUPoolLinear(seed uint64) *graph.Model {
	m := graph.NewModel("cbrpl", []int{1, 28, 28}, tensor.Float32, seed)
	m.Conv2d("conv", graph.Conv{Out: 4, Kernel: 3, Pad: 1})
	m.BatchNorm("bn", 0, 0)
	m.ReLU("relu")
	m.MaxPool2d("pool", 2, 2, 0)
	m.Flatten("flat")
	m.Linear("fc", 10, true)
	return m
}

func TestPrepareInsertsExpectedFakeQuantNodes(t *testing.T) {
	m := convBNReLUPoolLinear(1)
	p, err := Prepare(m, W8A8())
	if err != nil {
		t.Fatal(err)
	}
	nq := p.Quantizer()
	n, err := m.Build(graph.Options{Batch: 2, Train: true, Quant: nq, FoldBN: true})
	if err != nil {
		t.Fatal(err)
	}
	var fq []string
	for _, node := range n.G.AllNodes() {
		if s := fmt.Sprint(node.Op()); strings.HasPrefix(s, "FakeQuant{") {
			fq = append(fq, s)
		}
	}
	want := []string{"input", "conv.weight", "conv.out", "fc.weight", "fc.out"}
	if len(fq) != len(want) {
		t.Fatalf("fake-quant nodes %v, want %v", fq, want)
	}
	for _, w := range want {
		q, ok := nq.Qs[w]
		if !ok {
			t.Fatalf("no quantizer at %s (have %v)", w, fq)
		}
		if c := strings.Count(strings.Join(fq, " "), "FakeQuant{"+w+"}"); c != 1 {
			t.Fatalf("%d nodes for %s", c, w)
		}
		_ = q
	}
	// placement: the conv weight quantizer reads the BN-folded weight, the conv output quantizer
	// reads the ReLU output and feeds the pool, the input quantizer reads the model input.
	if in := nq.Qs["conv.weight"].In; !strings.HasPrefix(fmt.Sprint(in.Op()), "ChanScale") {
		t.Errorf("conv.weight quantizes %v, want the folded weight", in.Op())
	}
	if in := nq.Qs["conv.out"].In; !strings.Contains(strings.ToLower(fmt.Sprint(in.Op())), "relu") && !strings.Contains(fmt.Sprint(in.Op()), "max") {
		// Gorgonia's Rectify is a composite; accept any op whose output is the relu layer's node
		if in != n.Nodes["relu"] && n.Nodes["relu"] != nq.Qs["conv.out"].Out {
			t.Errorf("conv.out quantizes %v", in.Op())
		}
	}
	if nq.Qs["input"].In != n.X {
		t.Error("input quantizer does not read the model input")
	}
	if nq.Qs["fc.out"].Out != n.Out {
		t.Error("model output is not the fc.out quantizer")
	}
	// per-channel weights: 4 conv channels, 10 fc channels
	if k := nq.Qs["conv.weight"].Layout().Slices(); k != 4 {
		t.Errorf("conv.weight has %d scales", k)
	}
	// W4A4 with first/last at 8 bits keeps the same sites with other bit widths
	c := W4A4LSQ().FirstLast8(m)
	p2, err := Prepare(m, c)
	if err != nil {
		t.Fatal(err)
	}
	if sp := c.spec(m, p2.Sites[1]); sp.Bits != 8 {
		t.Errorf("first layer weight bits %d", sp.Bits)
	}
}

// naiveConv computes a dense 3x3-style convolution of one NCHW batch in float64.
func naiveConv(x []float64, n, c, h, w int, wt []float64, o, k, pad int) []float64 {
	out := make([]float64, n*o*h*w)
	for b := 0; b < n; b++ {
		for oc := 0; oc < o; oc++ {
			for y := 0; y < h; y++ {
				for xx := 0; xx < w; xx++ {
					var s float64
					for ic := 0; ic < c; ic++ {
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								iy, ix := y+ky-pad, xx+kx-pad
								if iy < 0 || ix < 0 || iy >= h || ix >= w {
									continue
								}
								s += x[((b*c+ic)*h+iy)*w+ix] * wt[((oc*c+ic)*k+ky)*k+kx]
							}
						}
					}
					out[((b*o+oc)*h+y)*w+xx] = s
				}
			}
		}
	}
	return out
}

// The simulated fold in eval mode must equal an explicitly folded, explicitly quantized conv:
// y = relu(conv(x, fq(W*gamma/sigma)) + beta - gamma*mean/sigma).
func TestBNFoldSimulationEqualsExplicitFold(t *testing.T) {
	m := graph.NewModel("fold", []int{2, 5, 5}, tensor.Float32, 3)
	m.Conv2d("conv", graph.Conv{Out: 3, Kernel: 3, Pad: 1})
	m.BatchNorm("bn", 0, 0)
	m.ReLU("relu")
	// non-trivial BN parameters and statistics
	for i, v := range []float32{0.5, -1.5, 2} {
		f32s(m.Param("bn.gamma").Value)[i] = v
		f32s(m.Param("bn.beta").Value)[i] = v / 3
		f32s(m.Param("bn.running_mean").Value)[i] = v / 7
		f32s(m.Param("bn.running_var").Value)[i] = 0.3 + v*v
	}
	cfg := W8A8()
	cfg.Weight.Bits = 4 // coarse grid: a wrong fold shows up clearly
	fl := Spec{Float: true}
	cfg = cfg.With(graph.InputName, Override{Act: &fl}).With("conv", Override{Act: &fl})
	p, err := Prepare(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nq := p.Quantizer()
	n, err := m.Build(graph.Options{Batch: 2, Quant: nq, FoldBN: true})
	if err != nil {
		t.Fatal(err)
	}
	x := f32s(n.XVal)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37)) * 2
	}
	vm := newVM(n)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := n.Out.Value().Data().([]float32)
	sp, err := p.Params("conv.weight")
	if err != nil {
		t.Fatal(err)
	}
	W := f32s(m.Param("conv.weight").Value)
	g, be := f32s(m.Param("bn.gamma").Value), f32s(m.Param("bn.beta").Value)
	mu, va := f32s(m.Param("bn.running_mean").Value), f32s(m.Param("bn.running_var").Value)
	per := len(W) / 3
	wq := make([]float64, len(W))
	bias := make([]float64, 3)
	for c := 0; c < 3; c++ {
		sigma := math.Sqrt(float64(va[c]) + 1e-5)
		// recompute the per-channel scale independently from the folded weight range
		var amax float64
		for i := c * per; i < (c+1)*per; i++ {
			amax = math.Max(amax, math.Abs(float64(W[i])*float64(g[c])/sigma))
		}
		s := float32(amax / 7)
		if d := math.Abs(float64(s-sp.Params[c].Scale)) / float64(s); d > 1e-6 {
			t.Fatalf("channel %d scale %v, want %v", c, sp.Params[c].Scale, s)
		}
		for i := c * per; i < (c+1)*per; i++ {
			wf := float32(float64(W[i]) * float64(g[c]) / sigma)
			wq[i] = float64(quant.FakeQuantizeValue(wf, s, 0, -7, 7))
		}
		bias[c] = float64(be[c]) - float64(g[c])*float64(mu[c])/sigma
	}
	xs := make([]float64, len(x))
	for i, v := range x {
		xs[i] = float64(v)
	}
	want := naiveConv(xs, 2, 2, 5, 5, wq, 3, 3, 1)
	for i := range want {
		c := (i / 25) % 3
		want[i] = math.Max(0, want[i]+bias[c])
		if d := math.Abs(want[i] - float64(got[i])); d > 1e-5*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("out[%d] = %v, explicit fold %v", i, got[i], want[i])
		}
	}
}

// tinyModel is small enough for trainer tests to take well under a second per epoch.
func tinyModel(seed uint64) *graph.Model {
	m := graph.NewModel("tiny", []int{1, 28, 28}, tensor.Float32, seed)
	m.Conv2d("conv", graph.Conv{Out: 8, Kernel: 3, Pad: 1})
	m.BatchNorm("bn", 0, 0)
	m.ReLU("relu")
	m.MaxPool2d("pool", 4, 4, 0)
	m.Flatten("flat")
	m.Linear("fc", 10, true)
	return m
}

func loadMNIST(t testing.TB) (train, test *mnist.Set) {
	train, test, err := mnist.Load("")
	if err != nil {
		t.Skip("MNIST not available:", err)
	}
	return train, test
}

func paramBits(m *graph.Model) []uint32 {
	var out []uint32
	for _, p := range m.Params() {
		for _, v := range f32s(p.Value) {
			out = append(out, math.Float32bits(v))
		}
	}
	return out
}

func TestResumeIsExact(t *testing.T) {
	train, _ := loadMNIST(t)
	sub := train.Subset(320)
	for _, qc := range []*QConfig{nil, ptr(W4A4LSQ()), ptr(W8A8())} {
		name := "float"
		if qc != nil {
			name = qc.Name
		}
		t.Run(name, func(t *testing.T) {
			cfg := Config{Epochs: 2, BatchSize: 32, Seed: 5, Logger: quiet(), Schedule: CosineLR, BNFreeze: 14, ObserverFreeze: 7, CalibBatches: 2}
			mk := func() *Trainer {
				m := tinyModel(1)
				var p *Prepared
				if qc != nil {
					var err error
					if p, err = Prepare(m, *qc); err != nil {
						t.Fatal(err)
					}
				}
				tr, err := NewTrainer(Classify(m, sub), p, cfg)
				if err != nil {
					t.Fatal(err)
				}
				return tr
			}
			a := mk()
			defer a.Close()
			if err := a.Fit(nil); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			b := mk()
			b.Cfg.StopAfter = 1
			b.Cfg.CheckpointDir = dir
			if err := b.Fit(nil); err != nil {
				t.Fatal(err)
			}
			b.Close()
			c := mk()
			defer c.Close()
			if err := c.LoadCheckpoint(filepath.Join(dir, "checkpoint.bin")); err != nil {
				t.Fatal(err)
			}
			if err := c.Fit(nil); err != nil {
				t.Fatal(err)
			}
			if c.Step != a.Step || c.Epoch != 2 {
				t.Fatalf("resumed at step %d epoch %d, straight %d", c.Step, c.Epoch, a.Step)
			}
			wa, wc := paramBits(a.Net.(*graph.Model)), paramBits(c.Net.(*graph.Model))
			for i := range wa {
				if wa[i] != wc[i] {
					t.Fatalf("parameter word %d differs: straight %x resumed %x", i, wa[i], wc[i])
				}
			}
			if qc != nil {
				la, lc := a.Prep.Learnables(), c.Prep.Learnables()
				if len(la) != len(lc) {
					t.Fatalf("%d vs %d learnables", len(la), len(lc))
				}
				for i := range la {
					if !bytes.Equal(f32bytes(f32s(la[i].Value)), f32bytes(f32s(lc[i].Value))) {
						t.Fatalf("quantizer %s differs after resume", la[i].Name)
					}
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func f32bytes(v []float32) []byte {
	var b []byte
	for _, x := range v {
		u := math.Float32bits(x)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}

func TestNaNStopsAndKeepsCheckpoint(t *testing.T) {
	train, _ := loadMNIST(t)
	sub := train.Subset(256)
	dir := t.TempDir()
	tr, err := NewTrainer(Classify(tinyModel(2), sub), nil, Config{Epochs: 1, BatchSize: 32, Seed: 1, Logger: quiet(), CheckpointDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Fit(nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "checkpoint.bin")
	before, _ := os.ReadFile(path)
	f32s(tr.Net.Param("fc.weight").Value)[3] = float32(math.NaN())
	tr.Cfg.Epochs = 2
	err = tr.Fit(nil)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("Fit with a NaN weight: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("checkpoint changed after the NaN failure")
	}
}

// On a small subset, 4-bit QAT (LSQ, from the float model) beats 4-bit PTQ of the same float model.
func TestQAT4BeatsPTQ4(t *testing.T) {
	train, test := loadMNIST(t)
	sub, ev := train.Subset(2048), test.Subset(1000)
	m := tinyModel(4)
	ft, err := NewTrainer(Classify(m, sub), nil, Config{Epochs: 3, BatchSize: 32, Seed: 1, Logger: quiet(), LR: 3e-3})
	if err != nil {
		t.Fatal(err)
	}
	if err := ft.Fit(nil); err != nil {
		t.Fatal(err)
	}
	fm, err := ft.Evaluate(Images{Data: ev})
	floatAcc := fm.Acc
	if err != nil {
		t.Fatal(err)
	}
	ft.Close()
	var ck graph.Checkpoint
	m.SaveState(&ck)

	ptq, err := Calibrate(m, W4A4Observed(), sub, 4, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ptqAcc, _, err := Evaluate(m, ptq, ev, 500)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Prepare(m, W4A4LSQ())
	if err != nil {
		t.Fatal(err)
	}
	qt, err := NewTrainer(Classify(m, sub), p, Config{Epochs: 2, BatchSize: 32, Seed: 2, Logger: quiet(), LR: 1e-3, BNFreeze: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer qt.Close()
	if err := qt.Fit(nil); err != nil {
		t.Fatal(err)
	}
	qm, err := qt.Evaluate(Images{Data: ev})
	qatAcc := qm.Acc
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("float %.4f  PTQ W4A4 %.4f  QAT W4A4 %.4f", floatAcc, ptqAcc, qatAcc)
	if !(qatAcc > ptqAcc) {
		t.Fatalf("QAT 4-bit %.4f does not beat PTQ 4-bit %.4f", qatAcc, ptqAcc)
	}
}

func newVM(n *graph.Net) G.VM { return G.NewTapeMachine(n.G) }

// runObservers runs the observers of a prepared layer model over calibration batches of d.
func runObservers(p *Prepared, d Dataset, batches, B int, seed uint64) (*NetQuant, error) {
	return observe(Classify(p.Model, d), p, batches, B, seed)
}
