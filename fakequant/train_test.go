package fakequant

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestMLPTrainsWithLSQ trains a 16-64-4 MLP with 4-bit per-channel LSQ weights, an 8-bit EMA-observed
// input and an 8-bit LSQ hidden activation on a fixed synthetic regression set with Adam. The loss
// must fall at least 5x and every learned scale must stay positive (they are exp(log-scale), and
// the test also checks the values export would read).
func TestMLPTrainsWithLSQ(t *testing.T) {
	for _, dt := range dtypes {
		t.Run(dt.String(), func(t *testing.T) { trainMLP(t, dt, LSQ) })
	}
	// The same with a PACT hidden activation (learned clip alpha).
	t.Run("float32-pact", func(t *testing.T) { trainMLP(t, tensor.Float32, PACT) })
}

func trainMLP(t *testing.T, dt tensor.Dtype, hidden Method) {
	const nIn, nHid, nOut, batch = 16, 64, 4, 128
	rng := rand.New(rand.NewPCG(42, 7))
	randn := func(n int, sd float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64() * sd
		}
		return v
	}
	// Teacher: y = tanh(X A) B.
	xs := randn(batch*nIn, 1)
	a, b := randn(nIn*8, 1/math.Sqrt(nIn)), randn(8*nOut, 1)
	ys := make([]float64, batch*nOut)
	for i := 0; i < batch; i++ {
		for o := 0; o < nOut; o++ {
			s := 0.0
			for h := 0; h < 8; h++ {
				z := 0.0
				for j := 0; j < nIn; j++ {
					z += xs[i*nIn+j] * a[j*8+h]
				}
				s += math.Tanh(z) * b[h*nOut+o]
			}
			ys[i*nOut+o] = s
		}
	}

	g := G.NewGraph()
	x := G.NewMatrix(g, dt, G.WithShape(batch, nIn), G.WithName("x"), G.WithValue(denseOf(dt, []int{batch, nIn}, xs)))
	y := G.NewMatrix(g, dt, G.WithShape(batch, nOut), G.WithName("y"), G.WithValue(denseOf(dt, []int{batch, nOut}, ys)))
	w1 := G.NewMatrix(g, dt, G.WithShape(nIn, nHid), G.WithName("w1"), G.WithValue(denseOf(dt, []int{nIn, nHid}, randn(nIn*nHid, 1/math.Sqrt(nIn)))))
	w2 := G.NewMatrix(g, dt, G.WithShape(nHid, nOut), G.WithName("w2"), G.WithValue(denseOf(dt, []int{nHid, nOut}, randn(nHid*nOut, 1/math.Sqrt(nHid)))))

	must := func(q *Quantizer, err error) *Quantizer {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	qx := must(New(g, x, Config{Name: "in", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.1}))
	qw1 := must(New(g, w1, Config{Name: "w1", Bits: 4, Granularity: PerChannel, Axis: 1}))
	qw2 := must(New(g, w2, Config{Name: "w2", Bits: 4, Granularity: PerChannel, Axis: 1}))
	h := G.Must(G.Rectify(G.Must(G.Mul(qx.Out, qw1.Out))))
	qh := must(New(g, h, Config{Name: "h", Bits: 8, Scheme: AsymmetricUnsigned, Method: hidden}))
	out := G.Must(G.Mul(qh.Out, qw2.Out))
	diff := G.Must(G.Sub(out, y))
	loss := G.Must(G.Mean(G.Must(G.Square(diff))))

	quantizers := []*Quantizer{qx, qw1, qw2, qh}
	learn := G.Nodes{w1, w2}
	for _, q := range quantizers {
		learn = append(learn, q.Learnables()...)
	}
	if _, err := G.Grad(loss, learn...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(learn...))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(0.01))

	// Calibrate the hidden LSQ scale from one pass with it disabled.
	qh.SetEnabled(false)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	vm.Reset()
	if err := qh.InitFromInput(); err != nil {
		t.Fatal(err)
	}
	qh.SetEnabled(true)
	var alpha0 []float64
	if qh.Alpha != nil {
		alpha0 = floats(qh.Alpha.Value())
	}
	for _, n := range learn { // drop the calibration pass's gradients
		zeroGrad(t, n)
	}

	lossOf := func() float64 {
		switch v := loss.Value().Data().(type) {
		case float32:
			return float64(v)
		case float64:
			return v
		}
		t.Fatalf("loss value %T", loss.Value())
		return 0
	}
	var first, last float64
	const steps = 300
	for i := 0; i < steps; i++ {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = lossOf()
		}
		last = lossOf()
		if err := solver.Step(G.NodesToValueGrads(learn)); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
		for _, q := range quantizers {
			ps, err := q.Params()
			if err != nil {
				t.Fatal(err)
			}
			for k, p := range ps {
				if !(p.Scale > 0) || math.IsInf(float64(p.Scale), 0) {
					t.Fatalf("step %d: %s scale %d = %v", i, q.Config().Name, k, p.Scale)
				}
			}
		}
	}
	t.Logf("%v: loss %.4f -> %.4f (%.1fx)", dt, first, last, first/last)
	if !(last*5 <= first) {
		t.Fatalf("loss fell only %.4f -> %.4f", first, last)
	}
	if alpha0 != nil {
		if a := floats(qh.Alpha.Value()); a[0] == alpha0[0] {
			t.Fatalf("PACT alpha never moved from %v", alpha0[0])
		} else {
			t.Logf("PACT alpha %.3f -> %.3f", alpha0[0], a[0])
		}
	}
	// The learned scales moved (LSQ is learning, not idle).
	ls := floats(qw1.LogScale.Value())
	w := floats(w1.Value())
	init, _ := LSQInitScale(w, qw1.Layout(), qw1.Config().Qp())
	moved := false
	for k := range ls {
		moved = moved || math.Abs(math.Exp(ls[k])-float64(init[k])) > 1e-3*float64(init[k])
	}
	if !moved {
		t.Fatal("LSQ weight scales never moved from their initialisation")
	}
}
