//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// TestFusedConvWithoutAMX runs TestFusedConv with the AMX kernels turned off, so that the AMX
// shapes also take the AVX-512 VNNI kernels, as on CPUs without AMX.
func TestFusedConvWithoutAMX(t *testing.T) {
	if !hasAMX {
		t.Skip("no AMX-INT8 (or the OS refused it): TestFusedConv already runs the VNNI kernels")
	}
	hasAMX = false
	defer func() { hasAMX = true }()
	TestFusedConv(t)
}

// TestAMXConcurrent runs one AMX convolution on several goroutines at once while the garbage
// collector preempts them with signals: every result must equal the single-threaded one (the
// tile registers are per thread and each kernel call configures its own).
func TestAMXConcurrent(t *testing.T) {
	if !hasAMX {
		t.Skip("no AMX-INT8")
	}
	s := fusedShapes[len(convShapes)+1] // 14x14x16 -> 32
	r := rand.New(rand.NewPCG(43, 44))
	wraw := make([]int8, s.OutC*s.K())
	fillInt8(r, wraw, fillRandom, true)
	w, err := PackInt8(wraw, s.OutC, s.K())
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFusedConv(s, true, -128, w, nil, randomRequant(r, s.OutC, s.K()))
	if err != nil {
		t.Fatal(err)
	}
	const batch = 4
	src := make([]int8, batch*s.InH*s.InW*s.InC)
	fillInt8(r, src, fillRandom, false)
	want := make([]int8, batch*f.OutH()*f.OutW()*s.OutC)
	var sc FusedScratch
	f.Run(want, src, batch, &sc)
	iters := 300
	if testing.Short() {
		iters = 50
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc FusedScratch
			got := make([]int8, len(want))
			for i := 0; i < iters; i++ {
				f.Run(got, src, batch, &sc)
				for j := range want {
					if got[j] != want[j] {
						errs <- "result differs from the single-threaded one"
						return
					}
				}
				if i%16 == 0 {
					runtime.GC()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestGEMMWithoutAMX runs the GEMM tests with the AMX GEMM turned off, so that the VNNI kernels
// keep their coverage on CPUs with AMX.
func TestGEMMWithoutAMX(t *testing.T) {
	if !hasAMX {
		t.Skip("no AMX-INT8: the GEMM tests already run the VNNI kernels")
	}
	hasAMX = false
	defer func() { hasAMX = true }()
	TestGEMMAllPaths(t)
	TestGEMMThreaded(t)
}

// TestGEMMAMX compares the AMX GEMM (avx512vnni path, int32 and int8 results) with the naive
// reference on the shapes that take its branches: rows in place or copied (K a multiple of 64
// or not), a last block of at most 16 rows, of 17 to 31 rows, whole blocks, lone and paired
// channel tiles, a partial last tile, more channel tiles than one call takes, padded leading
// dimensions, and checks that nothing outside the output is written.
func TestGEMMAMX(t *testing.T) {
	if !hasAMX {
		t.Skip("no AMX-INT8")
	}
	p := lookup("avx512vnni")
	r := rand.New(rand.NewPCG(45, 46))
	for _, m := range []int{amxGemmMinRows, 5, 15, 16, 17, 31, 32, 33, 64, 70} {
		for _, k := range []int{4, 64, 100, 128, amxGemmMinK, 288, 640, 1024} {
			for _, n := range []int{1, 10, 16, 17, 32, 33, 48, 80, 16*amxGemmColTiles + 44} {
				lda, ldd := k+r.IntN(2)*3, n+r.IntN(2)*5
				a := make([]int8, (m-1)*lda+k) // the last row ends the slice
				kind := fillKind(r.IntN(4))
				fillInt8(r, a, kind, false)
				wraw := make([]int8, n*k)
				fillInt8(r, wraw, kind, true)
				w, err := PackInt8(wraw, n, k)
				if err != nil {
					t.Fatal(err)
				}
				bias := make([]int32, n)
				for j := range bias {
					bias[j] = int32(r.IntN(1<<16) - 1<<15)
				}
				rq := randomRequant(r, n, k)
				want32 := refGEMM(a, lda, m, wraw, n, k, bias)
				want := refRequant(want32, n, rq)
				got32 := make([]int32, (m-1)*ldd+n+7)
				for i := range got32 {
					got32[i] = 99
				}
				gemmInt32(p, got32, ldd, a, lda, m, w, bias)
				for i := 0; i < m; i++ {
					for j := 0; j < ldd && i*ldd+j < len(got32); j++ {
						if g := got32[i*ldd+j]; j < n && g != want32[i*n+j] {
							t.Fatalf("m%d n%d k%d: int32 [%d][%d] got %d want %d", m, n, k, i, j, g, want32[i*n+j])
						} else if j >= n && g != 99 {
							t.Fatalf("m%d n%d k%d: int32 result written into the row padding", m, n, k)
						}
					}
				}
				for i := (m-1)*ldd + n; i < len(got32); i++ {
					if got32[i] != 99 {
						t.Fatalf("m%d n%d k%d: int32 result written past the output", m, n, k)
					}
				}
				got := make([]int8, (m-1)*ldd+n+7)
				for i := range got {
					got[i] = 99
				}
				gemmInt8(p, got, ldd, a, lda, m, w, bias, rq)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						if g, w := got[i*ldd+j], want[i*n+j]; g != w {
							t.Fatalf("m%d n%d k%d: [%d][%d] got %d want %d", m, n, k, i, j, g, w)
						}
					}
					for j := n; j < ldd && i*ldd+j < len(got); j++ {
						if got[i*ldd+j] != 99 {
							t.Fatalf("m%d n%d k%d: wrote into the row padding", m, n, k)
						}
					}
				}
				for i := (m-1)*ldd + n; i < len(got); i++ {
					if got[i] != 99 {
						t.Fatalf("m%d n%d k%d: wrote past the output", m, n, k)
					}
				}
			}
		}
	}
}

// withAMXOff runs fn with the AMX kernels turned off (the AVX-512 VNNI path then takes its own
// kernels for the shapes with an AMX plan) and reports true, or reports false without running
// fn where AMX is off already.
func withAMXOff(fn func()) bool {
	if !hasAMX {
		return false
	}
	hasAMX = false
	defer func() { hasAMX = true }()
	fn()
	return true
}

// BenchmarkGEMMSmallM times int8 GEMMs of few rows (N = 10, the MNIST CNNs' classifier) with and
// without the AMX GEMM, in ns per row: the data behind amxGemmMinRows and amxGemmMinRowsCopy.
func BenchmarkGEMMSmallM(b *testing.B) {
	p := lookup("avx512vnni")
	for _, k := range []int{784, 3136} {
		for _, m := range []int{4, 6, 8, 12, 16, 24} {
			for _, amx := range []bool{true, false} {
				b.Run(fmt.Sprintf("k%d/m%d/amx%v", k, m, amx), func(b *testing.B) {
					old := hasAMX
					hasAMX = amx && old
					defer func() { hasAMX = old }()
					n := 10
					a := make([]int8, m*k)
					wraw := make([]int8, n*k)
					w, _ := PackInt8(wraw, n, k)
					rq := &Requant{M0: make([]int32, n), Shift: make([]int32, n), Min: -128, Max: 127}
					dst := make([]int8, m*n)
					for range b.N {
						gemmInt8(p, dst, n, a, k, m, w, nil, rq)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*m), "ns/row")
				})
			}
		}
	}
}

// BenchmarkPeakTDPBUSD measures the AMX-INT8 peak of this machine (register-only TDPBUSD, four
// independent 16x16x64 tiles per iteration) on 1 and 2 goroutines at once, in GOPS for all of them:
// compare the AMX GEMM with it (and with BenchmarkPeakVPDPBUSD) in the same run.
func BenchmarkPeakTDPBUSD(b *testing.B) {
	if !hasAMX {
		b.Skip("no AMX-INT8")
	}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads%d", threads), func(b *testing.B) {
			const n = 1 << 14
			var wg sync.WaitGroup
			for range b.N {
				wg.Add(threads)
				for range threads {
					go func() { peakTDPBUSD(&amxGemmCfg[0], n); wg.Done() }()
				}
				wg.Wait()
			}
			ops := float64(threads) * 4 * 16 * 16 * 64 * 2 * float64(n) * float64(b.N)
			b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
		})
	}
}
