package convop

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/qatgo/qatgo/fastblas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// cnn is the ggml MNIST example network: conv3x3 1->8 pad 1, ReLU, max-pool
// 2, conv3x3 8->16 pad 1, ReLU, max-pool 2, dense 784->10 (+bias),
// softmax cross-entropy.
type cnn struct {
	g          *G.ExprGraph
	x, y       *G.Node
	params     G.Nodes
	loss       *G.Node
	lossValue  G.Value
	machine    G.VM
	solver     G.Solver
	batch      int
	xData      []float32
	labelsData []float32
}

// newCNN builds the network with gorgonia.Conv2d, gorgonia.Rectify and
// gorgonia.MaxPool2D, or with Conv2d and (when ourPool) ReLU and MaxPool2D
// of this package.
func newCNN(tb testing.TB, batch int, ours, ourPool bool, seed uint64) *cnn {
	r := rand.New(rand.NewPCG(seed, 1))
	init := func(shape ...int) *tensor.Dense {
		fanIn := 1
		for _, s := range shape[1:] {
			fanIn *= s
		}
		if len(shape) == 2 { // dense weight is (in, out)
			fanIn = shape[0]
		}
		size := 1
		for _, s := range shape {
			size *= s
		}
		d := make([]float32, size)
		for i := range d {
			d[i] = float32(r.NormFloat64() / float64(fanIn) * 2)
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
	}
	m := &cnn{g: G.NewGraph(), batch: batch}
	g := m.g
	m.xData = make([]float32, batch*28*28)
	for i := range m.xData {
		m.xData[i] = r.Float32()
	}
	m.labelsData = make([]float32, batch*10)
	for i := 0; i < batch; i++ {
		m.labelsData[i*10+r.IntN(10)] = 1
	}
	m.x = G.NewTensor(g, tensor.Float32, 4, G.WithShape(batch, 1, 28, 28), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(batch, 1, 28, 28), tensor.WithBacking(m.xData))))
	m.y = G.NewMatrix(g, tensor.Float32, G.WithShape(batch, 10), G.WithName("y"),
		G.WithValue(tensor.New(tensor.WithShape(batch, 10), tensor.WithBacking(m.labelsData))))
	w1 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(8, 1, 3, 3), G.WithName("w1"), G.WithValue(init(8, 1, 3, 3)))
	w2 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(16, 8, 3, 3), G.WithName("w2"), G.WithValue(init(16, 8, 3, 3)))
	w3 := G.NewMatrix(g, tensor.Float32, G.WithShape(784, 10), G.WithName("w3"), G.WithValue(init(784, 10)))
	b3 := G.NewVector(g, tensor.Float32, G.WithShape(10), G.WithName("b3"), G.WithInit(G.Zeroes()))
	m.params = G.Nodes{w1, w2, w3, b3}
	conv := func(x, w *G.Node) *G.Node {
		var out *G.Node
		var err error
		if ours {
			out, err = Conv2d(x, w, []int{1, 1}, []int{1, 1})
		} else {
			out, err = G.Conv2d(x, w, tensor.Shape{3, 3}, []int{1, 1}, []int{1, 1}, []int{1, 1})
		}
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}
	pool := func(x *G.Node) *G.Node {
		if ourPool {
			return G.Must(MaxPool2D(x, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}))
		}
		return G.Must(G.MaxPool2D(x, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}))
	}
	relu := G.Rectify
	if ourPool {
		relu = ReLU
	}
	h := pool(G.Must(relu(conv(m.x, w1))))
	h = pool(G.Must(relu(conv(h, w2))))
	h = G.Must(G.Reshape(h, tensor.Shape{batch, 784}))
	logits := G.Must(G.BroadcastAdd(G.Must(G.Mul(h, w3)), b3, nil, []byte{0}))
	logp := G.Must(G.LogSoftMax(logits))
	m.loss = G.Must(G.Neg(G.Must(G.Div(G.Must(G.Sum(G.Must(G.HadamardProd(logp, m.y)))), G.NewConstant(float32(batch))))))
	G.Read(m.loss, &m.lossValue)
	if _, err := G.Grad(m.loss, m.params...); err != nil {
		tb.Fatal(err)
	}
	m.machine = G.NewTapeMachine(g, G.BindDualValues(m.params...))
	m.solver = G.NewAdamSolver(G.WithLearnRate(1e-3))
	return m
}

// step runs one forward+backward pass and one Adam update.
func (m *cnn) step() (float32, error) {
	if err := m.machine.RunAll(); err != nil {
		return 0, err
	}
	loss := m.lossValue.Data().(float32)
	if err := m.solver.Step(G.NodesToValueGrads(m.params)); err != nil {
		return 0, err
	}
	m.machine.Reset()
	return loss, nil
}

// TestCNNTrains checks that the network built on Conv2d, ReLU and MaxPool2D
// learns a fixed batch: the loss falls and matches the network built on
// gorgonia.Conv2d and gorgonia.MaxPool2D step by step.
func TestCNNTrains(t *testing.T) {
	ours := newCNN(t, 16, true, true, 3)
	defer ours.machine.Close()
	ref := newCNN(t, 16, false, false, 3)
	defer ref.machine.Close()
	var first, last float32
	for i := 0; i < 8; i++ {
		l1, err := ours.step()
		if err != nil {
			t.Fatal(err)
		}
		l2, err := ref.step()
		if err != nil {
			t.Fatal(err)
		}
		if d := l1 - l2; d > 1e-3 || d < -1e-3 {
			t.Fatalf("step %d: loss %g, gorgonia.Conv2d network %g", i, l1, l2)
		}
		if i == 0 {
			first = l1
		}
		last = l1
	}
	if !(last < first) {
		t.Fatalf("loss did not fall: %g -> %g", first, last)
	}
}

// BenchmarkCNNStep times one training step (forward, backward, Adam) of the
// ggml MNIST CNN at batch 64 with gorgonia.Conv2d on gonum's BLAS,
// gorgonia.Conv2d on fastblas, Conv2d on fastblas, and Conv2d, ReLU and
// MaxPool2D on fastblas. Run with -cpu 1,2 to see the effect of the second
// core.
func BenchmarkCNNStep(b *testing.B) {
	const batch = 64
	for _, v := range []struct {
		name             string
		ours, pool, fast bool
	}{
		{"gorgonia-conv+gonum", false, false, false},
		{"gorgonia-conv+fastblas", false, false, true},
		{"convop+fastblas", true, false, true},
		{"convop+relu+maxpool+fastblas", true, true, true},
	} {
		b.Run(v.name, func(b *testing.B) {
			if v.fast {
				defer fastblas.Install()()
			}
			m := newCNN(b, batch, v.ours, v.pool, 1)
			defer m.machine.Close()
			if _, err := m.step(); err != nil { // warm up buffers
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				if _, err := m.step(); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuSeconds() - cpu0
			perStep := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perStep*1e3, "ms/step")
			b.ReportMetric(perStep*1e3/batch, "ms/image")
			// Process CPU time (user+system, all threads) per step: on a
			// machine shared with other jobs wall time overstates the cost.
			if cpu > 0 {
				b.ReportMetric(cpu*1e3/float64(b.N), "cpu-ms/step")
			}
		})
	}
}

// BenchmarkCNNStepVsGorgonia alternates one training step of the CNN built
// from gorgonia.Conv2d, Rectify and MaxPool2D on gonum's BLAS with one step
// of the CNN built from this package's ops on fastblas, and reports the
// best and median time per step of each and the ratio of the best times:
// on a machine shared with other jobs, interleaving compares the two under
// the same conditions (run with e.g. -benchtime 20x -cpu 1,2).
func BenchmarkCNNStepVsGorgonia(b *testing.B) {
	const batch = 64
	ref := newCNN(b, batch, false, false, 1)
	defer ref.machine.Close()
	ours := newCNN(b, batch, true, true, 1)
	defer ours.machine.Close()
	restore := fastblas.Install()
	defer restore()
	var tRef, tOurs []time.Duration
	for i := -1; i < b.N; i++ { // i == -1 warms up both
		restore()
		t0 := time.Now()
		if _, err := ref.step(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		restore = fastblas.Install()
		if _, err := ours.step(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if i >= 0 {
			tRef, tOurs = append(tRef, t1.Sub(t0)), append(tOurs, t2.Sub(t1))
		}
	}
	slices.Sort(tRef)
	slices.Sort(tOurs)
	ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 }
	b.ReportMetric(ms(tRef[0]), "gorgonia-best-ms/step")
	b.ReportMetric(ms(tRef[len(tRef)/2]), "gorgonia-median-ms/step")
	b.ReportMetric(ms(tOurs[0]), "convop-best-ms/step")
	b.ReportMetric(ms(tOurs[len(tOurs)/2]), "convop-median-ms/step")
	b.ReportMetric(ms(tOurs[0])/batch, "convop-best-ms/image")
	b.ReportMetric(tRef[0].Seconds()/tOurs[0].Seconds(), "speedup")
}
