package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Benchmarks. Single-thread figures use SetMaxThreads(1); GOPS counts a multiply-add as two
// operations (2*M*N*K per GEMM). Commands are in the package README section of the report:
//
//	go test -run x -bench 'GEMM|Sgemm' -count 3 ./kernels/
//	go test -run x -bench GEMV -count 3 ./kernels/

func benchGEMM(b *testing.B, p *impl, m, n, k int, threads int) {
	r := rand.New(rand.NewPCG(1, 1))
	a := make([]int8, m*k)
	fillInt8(r, a, fillRandom, false)
	wraw := make([]int8, n*k)
	fillInt8(r, wraw, fillRandom, true)
	w, _ := PackInt8(wraw, n, k)
	rq := randomRequant(r, n, k)
	dst := make([]int8, m*n)
	old := SetMaxThreads(threads)
	defer SetMaxThreads(old)
	b.ResetTimer()
	cpu := startThreadCPU(b)
	for range b.N {
		gemmInt8(p, dst, n, a, k, m, w, nil, rq)
	}
	ops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
	if ns := cpu.nanos(); threads == 1 && ns > 0 {
		b.ReportMetric(ops/float64(ns), "GOPS-cpu")
	}
}

func BenchmarkGEMM(b *testing.B) {
	for _, size := range []int{512, 1024} {
		for _, p := range impls {
			if p.name == "portable" && size > 512 {
				continue
			}
			b.Run(fmt.Sprintf("%s/%d/1thread", p.name, size), func(b *testing.B) { benchGEMM(b, p, size, size, size, 1) })
		}
		p := impls[len(impls)-1]
		b.Run(fmt.Sprintf("%s/%d/allthreads", p.name, size), func(b *testing.B) { benchGEMM(b, p, size, size, size, 0) })
	}
}

// BenchmarkSgemmGonum is the float32 baseline: gonum's pure-Go Sgemm on the same shapes.
func BenchmarkSgemmGonum(b *testing.B) {
	for _, size := range []int{512, 1024} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := rand.New(rand.NewPCG(2, 2))
			a := make([]float32, size*size)
			w := make([]float32, size*size)
			c := make([]float32, size*size)
			for i := range a {
				a[i], w[i] = r.Float32(), r.Float32()
			}
			var impl gonum.Implementation
			// gonum's Sgemm runs on GOMAXPROCS goroutines; its CPU time is the process's.
			b.ResetTimer()
			start := processNanos()
			for range b.N {
				impl.Sgemm(blas.NoTrans, blas.Trans, size, size, size, 1, a, size, w, size, 0, c, size)
			}
			ops := 2 * float64(size*size*size) * float64(b.N)
			b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GFLOPS")
			if ns := processNanos() - start; ns > 0 {
				b.ReportMetric(ops/float64(ns), "GFLOPS-cpu")
			}
		})
	}
}

func benchGEMV(b *testing.B, p *impl, n, k, threads int) {
	r := rand.New(rand.NewPCG(3, 3))
	a := make([]int8, k)
	fillInt8(r, a, fillRandom, false)
	wraw := make([]int8, n*k)
	fillInt8(r, wraw, fillRandom, true)
	w, _ := PackInt8(wraw, n, k)
	rq := randomRequant(r, n, k)
	dst := make([]int8, n)
	old := SetMaxThreads(threads)
	defer SetMaxThreads(old)
	b.ResetTimer()
	cpu := startThreadCPU(b)
	for range b.N {
		gemmInt8(p, dst, n, a, k, 1, w, nil, rq)
	}
	units := float64(b.N) * float64(n) * float64(k) / 32
	b.ReportMetric(b.Elapsed().Seconds()*1e9/units, "ns/32MAC")
	if ns := cpu.nanos(); threads == 1 && ns > 0 {
		b.ReportMetric(float64(ns)/units, "cpu-ns/32MAC")
	}
}

// BenchmarkGEMV: batch-1 int8 GEMV K=N=4096 (16 MB of weights, beyond L2: bound by memory
// bandwidth), and N=128 (512 KB, L2-resident: the compute rate, comparable with an in-cache
// dot-product benchmark such as ggml's test-quantize-perf).
func BenchmarkGEMV(b *testing.B) {
	for _, p := range impls {
		b.Run(p.name+"/4096/1thread", func(b *testing.B) { benchGEMV(b, p, 4096, 4096, 1) })
	}
	for _, p := range impls {
		b.Run(p.name+"/4096x128-L2/1thread", func(b *testing.B) { benchGEMV(b, p, 128, 4096, 1) })
	}
	p := impls[len(impls)-1]
	b.Run(p.name+"/4096/allthreads", func(b *testing.B) { benchGEMV(b, p, 4096, 4096, 0) })
}

// BenchmarkGEMVInt4: W4A8 GEMV, K=N=4096, group size 32 (8 MB of packed weights).
func BenchmarkGEMVInt4(b *testing.B) {
	const n, k, g = 4096, 4096, 32
	r := rand.New(rand.NewPCG(4, 4))
	w := make([]int8, n*k)
	for i := range w {
		w[i] = int8(r.IntN(15) - 7)
	}
	scales := make([]int32, n*k/g)
	for i := range scales {
		scales[i] = int32(1 + r.IntN(255))
	}
	p, err := PackInt4(w, n, k, g, scales)
	if err != nil {
		b.Fatal(err)
	}
	a := make([]int8, k)
	fillInt8(r, a, fillRandom, false)
	bias := make([]int32, n)
	dst := make([]int32, n)
	for _, pi := range impls {
		b.Run(pi.name+"/1thread", func(b *testing.B) {
			old := SetMaxThreads(1)
			defer SetMaxThreads(old)
			cpu := startThreadCPU(b)
			for range b.N {
				gemv4(pi, dst, a, p, bias)
			}
			units := float64(b.N) * float64(n) * float64(k) / 32
			b.ReportMetric(b.Elapsed().Seconds()*1e9/units, "ns/32MAC")
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(float64(ns)/units, "cpu-ns/32MAC")
			}
		})
	}
}

// BenchmarkConvMNIST: the two convolutions of the MNIST CNN (batch 1, one thread):
// conv1 28x28x1 -> 8 and conv2 14x14x8 -> 16, both 3x3 with padding 1.
func BenchmarkConvMNIST(b *testing.B) {
	for ci, s := range convShapes[:2] {
		r := rand.New(rand.NewPCG(5, 5))
		src := make([]int8, s.InH*s.InW*s.InC)
		fillInt8(r, src, fillRandom, false)
		wraw := make([]int8, s.OutC*s.K())
		fillInt8(r, wraw, fillRandom, true)
		w, _ := PackInt8(wraw, s.OutC, s.K())
		rq := randomRequant(r, s.OutC, s.K())
		dst := make([]int8, s.OutH()*s.OutW()*s.OutC)
		scratch := make([]int8, Conv2DScratchLen(s))
		for _, p := range impls {
			b.Run(fmt.Sprintf("conv%d/%s", ci+1, p.name), func(b *testing.B) {
				old := SetMaxThreads(1)
				defer SetMaxThreads(old)
				b.ReportAllocs()
				cpu := startThreadCPU(b)
				for range b.N {
					conv2D(p, dst, src, 1, s, -3, w, nil, rq, scratch)
				}
				if ns := cpu.nanos(); ns > 0 {
					b.ReportMetric(float64(ns)/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}

// BenchmarkCrossover compares one thread with all threads on square GEMMs of growing size,
// with the threading threshold disabled, to place parallelMinMACs.
func BenchmarkCrossover(b *testing.B) {
	p := impls[len(impls)-1]
	old := parallelMinMACs
	parallelMinMACs = 1
	defer func() { parallelMinMACs = old }()
	for _, s := range []int{32, 64, 96, 128, 192, 256} {
		for _, th := range []int{1, 0} {
			name := fmt.Sprintf("%s/%d/threads=%d", p.name, s, th)
			if th == 0 {
				name = fmt.Sprintf("%s/%d/threads=all", p.name, s)
			}
			b.Run(name, func(b *testing.B) { benchGEMM(b, p, s, s, s, th) })
		}
	}
}

// BenchmarkDepthwise: a MobileNet-style depthwise layer, 56x56x64, 3x3, stride 1, padding 1.
func BenchmarkDepthwise(b *testing.B) {
	s := ConvShape{InH: 56, InW: 56, InC: 64, OutC: 64, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	r := rand.New(rand.NewPCG(6, 6))
	src := make([]int8, s.InH*s.InW*s.InC)
	fillInt8(r, src, fillRandom, false)
	w := make([]int8, 9*s.InC)
	fillInt8(r, w, fillRandom, true)
	rq := randomRequant(r, s.InC, 9)
	dst := make([]int8, s.OutH()*s.OutW()*s.OutC)
	for _, p := range impls {
		b.Run(p.name, func(b *testing.B) {
			cpu := startThreadCPU(b)
			for range b.N {
				if p.depthwise != nil {
					p.depthwise(dst, src, 1, s, 3, w, nil, rq)
				} else {
					depthwise(dst, src, 1, s, 3, w, nil, rq)
				}
			}
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(float64(ns)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
