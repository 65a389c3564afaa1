package fakequant

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

const benchRows, benchCols = 1024, 1024 // 1M elements

func benchData() []float32 {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, benchRows*benchCols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// benchGraph builds cost = sum(op(x)) with x learnable, and returns a machine that computes the
// forward and the backward of op (and of the sum, the same in every variant).
func benchGraph(b *testing.B, x []float32, op func(g *G.ExprGraph, x *G.Node) (*G.Node, G.Nodes)) G.VM {
	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float32, G.WithShape(benchRows, benchCols), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(benchRows, benchCols), tensor.WithBacking(append([]float32(nil), x...)))))
	y, learn := op(g, xn)
	cost, err := G.Sum(y)
	if err != nil {
		b.Fatal(err)
	}
	wrt := append(G.Nodes{xn}, learn...)
	if _, err := G.Grad(cost, wrt...); err != nil {
		b.Fatal(err)
	}
	return G.NewTapeMachine(g, G.BindDualValues(wrt...))
}

func step(b *testing.B, vm G.VM) time.Duration {
	t0 := time.Now()
	if err := vm.RunAll(); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	vm.Reset()
	return d
}

// BenchmarkFakeQuantVsAdd times, in the same loop, forward+backward of graphs
//
//	sum(FakeQuant(x))   (LSQ, 8-bit, per-tensor or per-channel, both on 1M float32 elements)
//	sum(x + b)          (one plain Gorgonia element-wise op of the same size, b learnable)
//	sum(x .* w)         (G.HadamardProd, w learnable: an element-wise op whose backward computes)
//	sum(x)              (the shared part)
//
// and reports ns per element for the fake-quant node and the plain nodes (each net of sum(x)) and
// their ratios, from mean step times and from the fastest step of each graph (robust on a shared
// machine).
func BenchmarkFakeQuantVsAdd(b *testing.B) {
	x := benchData()
	n := float64(len(x))
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"per-tensor", Config{Name: "fq", Bits: 8, InitScale: 0.05}},
		{"per-channel", Config{Name: "fq", Bits: 8, InitScale: 0.05, Granularity: PerChannel, Axis: 0}},
		{"per-channel-last-axis", Config{Name: "fq", Bits: 8, InitScale: 0.05, Granularity: PerChannel, Axis: 1}},
		{"observed-ema-per-tensor", Config{Name: "fq", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.01}},
		{"observed-ema-single-pass", Config{Name: "fq", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.01, SinglePass: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fq := benchGraph(b, x, func(g *G.ExprGraph, xn *G.Node) (*G.Node, G.Nodes) {
				q, err := New(g, xn, tc.cfg)
				if err != nil {
					b.Fatal(err)
				}
				return q.Out, q.Learnables()
			})
			add := benchGraph(b, x, func(g *G.ExprGraph, xn *G.Node) (*G.Node, G.Nodes) {
				bn := G.NewMatrix(g, tensor.Float32, G.WithShape(benchRows, benchCols), G.WithName("b"), G.WithInit(G.Zeroes()))
				return G.Must(G.Add(xn, bn)), G.Nodes{bn}
			})
			mul := benchGraph(b, x, func(g *G.ExprGraph, xn *G.Node) (*G.Node, G.Nodes) {
				wn := G.NewMatrix(g, tensor.Float32, G.WithShape(benchRows, benchCols), G.WithName("w"), G.WithInit(G.Ones()))
				return G.Must(G.HadamardProd(xn, wn)), G.Nodes{wn}
			})
			base := benchGraph(b, x, func(g *G.ExprGraph, xn *G.Node) (*G.Node, G.Nodes) { return xn, nil })
			for range 2 { // warm-up
				step(b, fq)
				step(b, add)
				step(b, mul)
				step(b, base)
			}
			// Heap allocations per step of each whole graph (machine included).
			allocs := func(vm G.VM) float64 {
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				step(b, vm)
				runtime.ReadMemStats(&m1)
				return float64(m1.Mallocs - m0.Mallocs)
			}
			aFQ, aAdd := allocs(fq), allocs(add)
			// The machine is shared: besides means, keep the fastest step of each graph, which is
			// robust to interference from other processes.
			var tFQ, tAdd, tBase time.Duration
			mFQ, mAdd, mMul, mBase := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d1, d2, d4, d3 := step(b, fq), step(b, add), step(b, mul), step(b, base)
				tFQ, tAdd, tBase = tFQ+d1, tAdd+d2, tBase+d3
				mFQ, mAdd, mMul, mBase = min(mFQ, d1), min(mAdd, d2), min(mMul, d4), min(mBase, d3)
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / n }
			one := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / n }
			fqNet, addNet := per(tFQ)-per(tBase), per(tAdd)-per(tBase)
			b.ReportMetric(fqNet, "fq-ns/elem")
			b.ReportMetric(addNet, "add-ns/elem")
			b.ReportMetric(fqNet/addNet, "fq/add")
			fqMin, addMin := one(mFQ)-one(mBase), one(mAdd)-one(mBase)
			b.ReportMetric(fqMin, "fq-min-ns/elem")
			b.ReportMetric(addMin, "add-min-ns/elem")
			b.ReportMetric(one(mBase), "sum-min-ns/elem")
			b.ReportMetric(fqMin/addMin, "fq/add-min")
			mulMin := one(mMul) - one(mBase)
			b.ReportMetric(mulMin, "mul-min-ns/elem")
			b.ReportMetric(fqMin/mulMin, "fq/mul-min")
			b.ReportMetric(aFQ, "fq-graph-allocs/step")
			b.ReportMetric(aAdd, "add-graph-allocs/step")
		})
	}
}

// BenchmarkFakeQuantOp times the op's forward and backward Do calls alone (no machine) on 1M
// float32 elements; allocs/op shows the steady-state allocation of the op itself.
func BenchmarkFakeQuantOp(b *testing.B) {
	x := benchData()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"per-tensor", Config{Name: "fq", Bits: 8, InitScale: 0.05}},
		{"per-channel", Config{Name: "fq", Bits: 8, InitScale: 0.05, Granularity: PerChannel, Axis: 0}},
		{"per-channel-last-axis", Config{Name: "fq", Bits: 8, InitScale: 0.05, Granularity: PerChannel, Axis: 1}},
		{"observed-ema", Config{Name: "fq", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.01}},
		{"observed-ema-single-pass", Config{Name: "fq", Bits: 8, Scheme: AsymmetricSigned, Method: Observed, Momentum: 0.01, SinglePass: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := G.NewGraph()
			xt := tensor.New(tensor.WithShape(benchRows, benchCols), tensor.WithBacking(x))
			xn := G.NewMatrix(g, tensor.Float32, G.WithShape(benchRows, benchCols), G.WithName("x"), G.WithValue(xt))
			q, err := New(g, xn, tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			fwd := q.Out.Op().(*fqOp)
			bwd := &fqGradOp{q: q}
			vals := append([]G.Value{xt}, q.paramValues()...)
			gy := tensor.New(tensor.WithShape(benchRows, benchCols), tensor.WithBacking(append([]float32(nil), x...)))
			bvals := append(append([]G.Value{}, vals...), gy)
			if _, err := fwd.Do(vals...); err != nil {
				b.Fatal(err)
			}
			if _, err := bwd.Do(bvals...); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			best := time.Duration(1 << 62)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := fwd.Do(vals...); err != nil {
					b.Fatal(err)
				}
				if _, err := bwd.Do(bvals...); err != nil {
					b.Fatal(err)
				}
				best = min(best, time.Since(t0))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
			b.ReportMetric(float64(best.Nanoseconds())/float64(len(x)), "min-ns/elem")
		})
	}
}
