package fgemm_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/qatgo/qatgo/fgemm"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

func tr(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// TestAgainstGonum compares Sgemm and Dgemm (the dispatched kernels, with
// goroutines) with gonum's BLAS on random shapes, transposes, leading
// dimensions, alpha and beta.
func TestAgainstGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var impl gonum.Implementation
	sizes := []int{1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 47, 48, 49, 63, 64, 65, 67, 200}
	for it := 0; it < 150; it++ {
		ta, tb := r.IntN(2) == 1, r.IntN(2) == 1
		m, n, k := sizes[r.IntN(len(sizes))], sizes[r.IntN(len(sizes))], sizes[r.IntN(len(sizes))]
		if it%10 == 0 {
			m, n, k = 300, 130, 270 // large enough for the goroutine split
		}
		ar, ac := m, k
		if ta {
			ar, ac = k, m
		}
		br, bc := k, n
		if tb {
			br, bc = n, k
		}
		lda, ldb, ldc := ac+r.IntN(3), bc+r.IntN(3), n+r.IntN(3)
		alpha := []float64{1, -0.7, 2.5}[r.IntN(3)]
		beta := []float64{0, 1, 0.5}[r.IntN(3)]
		a := make([]float64, (ar-1)*lda+ac)
		b := make([]float64, (br-1)*ldb+bc)
		c := make([]float64, (m-1)*ldc+n)
		for _, x := range [][]float64{a, b, c} {
			for i := range x {
				x[i] = r.Float64()*2 - 1
			}
		}
		a32, b32, c32 := to32(a), to32(b), to32(c)
		want32 := append([]float32(nil), c32...)
		want64 := append([]float64(nil), c...)
		if beta == 0 { // BLAS: C must not be read
			for i := range c {
				c[i], c32[i] = math.NaN(), float32(math.NaN())
			}
		}
		name := fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g", ta, tb, m, n, k, alpha, beta)
		impl.Sgemm(tr(ta), tr(tb), m, n, k, float32(alpha), a32, lda, b32, ldb, float32(beta), want32, ldc)
		fgemm.Sgemm(ta, tb, m, n, k, float32(alpha), a32, lda, b32, ldb, float32(beta), c32, ldc)
		impl.Dgemm(tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, want64, ldc)
		fgemm.Dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		// Entries are sums of k products of values in [-1, 1].
		scale := math.Abs(alpha)*float64(k) + 1
		for idx := 0; idx < m*n; idx++ {
			i := idx/n*ldc + idx%n
			if d := math.Abs(float64(c32[i] - want32[i])); !(d <= 4e-6*scale) {
				t.Fatalf("Sgemm %s: C[%d] = %g, gonum %g", name, i, c32[i], want32[i])
			}
			if d := math.Abs(c[i] - want64[i]); !(d <= 1e-14*scale) {
				t.Fatalf("Dgemm %s: C[%d] = %g, gonum %g", name, i, c[i], want64[i])
			}
		}
	}
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

func ExampleSgemm() {
	// C = A*B with A 2x3 and B 3x2, both row-major.
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{7, 8, 9, 10, 11, 12}
	c := make([]float32, 4)
	fgemm.Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [58 64 139 154]
}

func benchGemm(b *testing.B, n int, useGonum bool) {
	a := make([]float32, n*n)
	bb := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = float32(i%7) - 3
		bb[i] = float32(i%5) - 2
	}
	var impl gonum.Implementation
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if useGonum {
			impl.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, a, n, bb, n, 0, c, n)
		} else {
			fgemm.Sgemm(false, false, n, n, n, 1, a, n, bb, n, 0, c, n)
		}
	}
	b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// BenchmarkSgemm compares fgemm with gonum's Sgemm on square products. Both
// use up to GOMAXPROCS goroutines: run with -cpu 1,2 to compare one and two
// cores.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 1024} {
		b.Run(fmt.Sprintf("gonum/%d", n), func(b *testing.B) { benchGemm(b, n, true) })
		b.Run(fmt.Sprintf("fgemm/%d", n), func(b *testing.B) { benchGemm(b, n, false) })
	}
}

func BenchmarkDgemm(b *testing.B) {
	for _, n := range []int{256} {
		x := make([]float64, n*n)
		c := make([]float64, n*n)
		for i := range x {
			x[i] = float64(i%7) - 3
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				fgemm.Dgemm(false, true, n, n, n, 1, x, n, x, n, 0, c, n)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// BenchmarkSgemmVsGonum alternates one gonum Sgemm and one fgemm Sgemm per
// iteration on the same square product and reports the best time of each as
// GFLOPS and their ratio: on a machine shared with other jobs the best of
// interleaved runs compares the two under the same conditions (run with
// e.g. -benchtime 5x -cpu 1,2).
func BenchmarkSgemmVsGonum(b *testing.B) {
	for _, n := range []int{256, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			a := make([]float32, n*n)
			bb := make([]float32, n*n)
			c := make([]float32, n*n)
			for i := range a {
				a[i] = float32(i%7) - 3
				bb[i] = float32(i%5) - 2
			}
			var impl gonum.Implementation
			bestG, bestF := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				impl.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, a, n, bb, n, 0, c, n)
				t1 := time.Now()
				fgemm.Sgemm(false, false, n, n, n, 1, a, n, bb, n, 0, c, n)
				t2 := time.Now()
				bestG, bestF = min(bestG, t1.Sub(t0)), min(bestF, t2.Sub(t1))
			}
			flop := 2 * float64(n) * float64(n) * float64(n)
			b.ReportMetric(flop/bestG.Seconds()/1e9, "gonum-GFLOPS")
			b.ReportMetric(flop/bestF.Seconds()/1e9, "fgemm-GFLOPS")
			b.ReportMetric(bestG.Seconds()/bestF.Seconds(), "speedup")
		})
	}
}
