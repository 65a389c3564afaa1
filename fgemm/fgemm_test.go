package fgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naive computes C = alpha*op(A)*op(B) + beta*C with a triple loop in
// float64, treating beta == 0 as "ignore C".
func naive[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av, bv := elems(transA, transB, i, j, p, a, lda, b, ldb)
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

// elems returns op(A)[i][p] and op(B)[p][j].
func elems[T Float](transA, transB bool, i, j, p int, a []T, lda int, b []T, ldb int) (T, T) {
	var av, bv T
	if transA {
		av = a[p*lda+i]
	} else {
		av = a[i*lda+p]
	}
	if transB {
		bv = b[j*ldb+p]
	} else {
		bv = b[p*ldb+j]
	}
	return av, bv
}

// bound returns sum_p |a||b| + |beta c| for element (i, j): the scale of the
// rounding error allowed.
func bound[T Float](transA, transB bool, i, j, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) float64 {
	var s float64
	for p := 0; p < k; p++ {
		av, bv := elems(transA, transB, i, j, p, a, lda, b, ldb)
		s += math.Abs(float64(av) * float64(bv))
	}
	s *= math.Abs(float64(alpha))
	if beta != 0 {
		s += math.Abs(float64(beta) * float64(c[i*ldc+j]))
	}
	return s + 1e-30
}

func randSlice[T Float](r *rand.Rand, n int) []T {
	x := make([]T, n)
	for i := range x {
		x[i] = T(r.Float64()*2 - 1)
	}
	return x
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	padA, padB     int // extra leading dimension
	padC           int
	alpha, beta    float64
}

func (g gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pads=%d/%d/%d,alpha=%g,beta=%g", g.transA, g.transB, g.m, g.n, g.k, g.padA, g.padB, g.padC, g.alpha, g.beta)
}

// checkCase runs one case through gemm with kernel kern and nthreads and
// compares it with naive.
func checkCase[T Float](t *testing.T, r *rand.Rand, kern *microKernel[T], nthreads int, g gemmCase, eps float64) {
	t.Helper()
	ar, ac := g.m, g.k
	if g.transA {
		ar, ac = g.k, g.m
	}
	br, bc := g.k, g.n
	if g.transB {
		br, bc = g.n, g.k
	}
	lda, ldb, ldc := max(1, ac)+g.padA, max(1, bc)+g.padB, max(1, g.n)+g.padC
	a := randSlice[T](r, max(0, (ar-1)*lda+ac))
	b := randSlice[T](r, max(0, (br-1)*ldb+bc))
	c := randSlice[T](r, max(0, g.m*ldc))
	if g.beta == 0 {
		for i := range c {
			c[i] = T(math.NaN())
		}
	}
	c0 := append([]T(nil), c...)
	want := naive(g.transA, g.transB, g.m, g.n, g.k, T(g.alpha), a, lda, b, ldb, T(g.beta), c, ldc)
	gemm(kern, nthreads, g.transA, g.transB, g.m, g.n, g.k, T(g.alpha), a, lda, b, ldb, T(g.beta), c, ldc)
	for i := 0; i < g.m; i++ {
		for j := 0; j < ldc; j++ {
			got := float64(c[i*ldc+j])
			if j >= g.n {
				if !(got == float64(c0[i*ldc+j]) || math.IsNaN(got) && math.IsNaN(float64(c0[i*ldc+j]))) {
					t.Fatalf("%s %v: padding C[%d,%d] changed", kern.name, g, i, j)
				}
				continue
			}
			w := want[i*g.n+j]
			tol := eps * bound(g.transA, g.transB, i, j, g.k, T(g.alpha), a, lda, b, ldb, T(g.beta), c0, ldc)
			if !(math.Abs(got-w) <= tol) {
				t.Fatalf("%s threads=%d %v: C[%d,%d] = %g, want %g (tol %g)", kern.name, nthreads, g, i, j, got, w, tol)
			}
		}
	}
}

func randomCases(r *rand.Rand, count, maxDim int) []gemmCase {
	alphas := []float64{1, -0.5, 0, 2}
	betas := []float64{0, 1, 0.3, -1}
	var cs []gemmCase
	for i := 0; i < count; i++ {
		cs = append(cs, gemmCase{
			transA: r.IntN(2) == 1, transB: r.IntN(2) == 1,
			m: 1 + r.IntN(maxDim), n: 1 + r.IntN(maxDim), k: 1 + r.IntN(maxDim),
			padA: r.IntN(4), padB: r.IntN(4), padC: r.IntN(4),
			alpha: alphas[r.IntN(len(alphas))], beta: betas[r.IntN(len(betas))],
		})
	}
	// Fixed edge cases: empty products and every transpose combination of
	// shapes that straddle tile and block boundaries.
	cs = append(cs,
		gemmCase{m: 3, n: 5, k: 0, alpha: 1, beta: 0},
		gemmCase{m: 3, n: 5, k: 0, alpha: 1, beta: 2},
		gemmCase{m: 0, n: 5, k: 3, alpha: 1, beta: 0},
		gemmCase{m: 4, n: 0, k: 3, alpha: 1, beta: 0},
	)
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			cs = append(cs,
				gemmCase{transA: ta, transB: tb, m: 67, n: 67, k: 67, padA: 1, padB: 2, padC: 3, alpha: 1, beta: 0},
				gemmCase{transA: ta, transB: tb, m: 1, n: 1, k: 1, alpha: 0.5, beta: 0.5},
				gemmCase{transA: ta, transB: tb, m: 17, n: 97, k: 300, padA: 5, alpha: -1, beta: 1},
				gemmCase{transA: ta, transB: tb, m: 130, n: 50, k: 9, padB: 1, alpha: 1, beta: 0},
			)
		}
	}
	return cs
}

// smallBlocks returns a copy of kern with tiny cache blocks so that small
// tests cross every kc, mc and nc boundary.
func smallBlocks[T Float](kern microKernel[T]) microKernel[T] {
	kern.kc, kern.mc, kern.nc = 7, 2*kern.mr, 2*kern.nr
	kern.name += " small blocks"
	return kern
}

func testKernels[T Float](t *testing.T, kernels []microKernel[T], eps float64) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := randomCases(r, 120, 67)
	saved := parallelFlops
	parallelFlops = 0
	defer func() { parallelFlops = saved }()
	for _, k := range kernels {
		for _, kern := range []microKernel[T]{k, smallBlocks(k)} {
			t.Run(kern.name, func(t *testing.T) {
				for i, g := range cases {
					checkCase(t, r, &kern, 1+i%3, g, eps)
				}
			})
		}
	}
}

func TestGemm32(t *testing.T) {
	k32, _ := available()
	testKernels(t, k32, 2e-6)
}

func TestGemm64(t *testing.T) {
	_, k64 := available()
	testKernels(t, k64, 1e-14)
}

// TestPublicAPI checks Sgemm and Dgemm (the dispatched kernels) on a case
// computed by hand.
func TestPublicAPI(t *testing.T) {
	// A = [1 2 3; 4 5 6], B = [7 8; 9 10; 11 12], A*B = [58 64; 139 154].
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{7, 8, 9, 10, 11, 12}
	c := []float32{1, 1, 1, 1}
	Sgemm(false, false, 2, 2, 3, 2, a, 3, b, 2, -1, c, 2)
	want := []float32{115, 127, 277, 307}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("Sgemm = %v, want %v", c, want)
		}
	}
	// Same product with both operands stored transposed.
	at := []float64{1, 4, 2, 5, 3, 6}
	bt := []float64{7, 9, 11, 8, 10, 12}
	d := []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	Dgemm(true, true, 2, 2, 3, 1, at, 2, bt, 3, 0, d, 2)
	wantD := []float64{58, 64, 139, 154}
	for i := range wantD {
		if d[i] != wantD[i] {
			t.Fatalf("Dgemm = %v, want %v", d, wantD)
		}
	}
}

func TestPanics(t *testing.T) {
	s := make([]float32, 100)
	tests := []struct {
		name string
		f    func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, s, 2, s, 2, 0, s, 2) }},
		{"lda too small", func() { Sgemm(false, false, 2, 2, 3, 1, s, 2, s, 2, 0, s, 2) }},
		{"ldb too small transposed", func() { Sgemm(false, true, 2, 2, 3, 1, s, 3, s, 2, 0, s, 2) }},
		{"ldc too small", func() { Sgemm(false, false, 2, 3, 2, 1, s, 2, s, 3, 0, s, 2) }},
		{"short a", func() { Sgemm(false, false, 20, 2, 10, 1, s, 10, s, 2, 0, s, 2) }},
		{"short c", func() { Sgemm(false, false, 2, 60, 2, 1, s, 2, s, 60, 0, s, 60) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
}

func TestSetThreads(t *testing.T) {
	old := SetThreads(3)
	defer SetThreads(old)
	if got := maxThreads(); got != 3 {
		t.Fatalf("maxThreads = %d, want 3", got)
	}
	SetThreads(0)
	if got := maxThreads(); got < 1 {
		t.Fatalf("maxThreads = %d", got)
	}
}

// BenchmarkMicroKernel times the dispatched float32 micro-kernel alone on
// L1-resident panels (kc = 256): the ceiling for the whole GEMM.
func BenchmarkMicroKernel(b *testing.B) {
	k := kern32
	const kc = 256
	a := make([]float32, kc*k.mr)
	bb := make([]float32, kc*k.nr)
	c := make([]float32, k.mr*k.nr)
	for i := range a {
		a[i] = 1e-3
	}
	for i := range bb {
		bb[i] = 1e-3
	}
	cpu0 := cpuSeconds()
	for i := 0; i < b.N; i++ {
		k.fn(kc, &a[0], &bb[0], &c[0], k.nr, true)
	}
	flops := 2 * float64(kc*k.mr*k.nr) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOPS")
	// Per CPU-second: not diluted when other jobs share the machine.
	if cpu := cpuSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(flops/cpu/1e9, "GFLOPS/cpu")
	}
}

// BenchmarkCNNShapes times the products of the MNIST CNN's convolutions
// (per image): forward W*col, weight gradient dy*col^T and input gradient
// W^T*dy, in GFLOPS per CPU-second.
func BenchmarkCNNShapes(b *testing.B) {
	shapes := []struct {
		name           string
		transA, transB bool
		m, n, k        int
		beta           float32
	}{
		{"fwd1", false, false, 8, 784, 9, 0},
		{"fwd2", false, false, 16, 196, 72, 0},
		{"dW1", false, true, 8, 9, 784, 1},
		{"dW2", false, true, 16, 72, 196, 1},
		{"dX2", true, false, 72, 196, 16, 0},
	}
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			a := make([]float32, s.m*s.k)
			bb := make([]float32, s.k*s.n)
			c := make([]float32, s.m*s.n)
			lda, ldb := s.k, s.n
			if s.transA {
				lda = s.m
			}
			if s.transB {
				ldb = s.k
			}
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, s.beta, c, s.n)
			}
			if cpu := cpuSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/cpu/1e9, "GFLOPS/cpu")
			}
		})
	}
}

// TestDotKernels checks the 4x4 dot-product kernels directly for every k
// from 0 to 40 (no full vector, full vectors only, masked tails), with rows
// ending at the end of their slices so that an unmasked tail would read
// past them.
func TestDotKernels(t *testing.T) {
	k32, k64 := available()
	r := rand.New(rand.NewPCG(8, 9))
	for _, kern := range k32 {
		if kern.dot != nil {
			testDot(t, r, kern.name, kern.dot, 1e-5)
		}
	}
	for _, kern := range k64 {
		if kern.dot != nil {
			testDot(t, r, kern.name, kern.dot, 1e-13)
		}
	}
}

func testDot[T Float](t *testing.T, r *rand.Rand, name string, dot func(int, *[4]*T, *[4]*T, *[16]T), eps float64) {
	for k := 0; k <= 40; k++ {
		var ap, bp [4]*T
		var rows [8][]T
		for i := range rows {
			rows[i] = randSlice[T](r, k+1)[:k+1]
			rows[i] = rows[i][1:] // k elements, last one at the end of the allocation
		}
		for i := 0; i < 4; i++ {
			if k > 0 {
				ap[i], bp[i] = &rows[i][0], &rows[4+i][0]
			} else {
				ap[i], bp[i] = new(T), new(T)
			}
		}
		var out [16]T
		for i := range out {
			out[i] = T(math.NaN())
		}
		dot(k, &ap, &bp, &out)
		for i := 0; i < 4; i++ {
			for j := 0; j < 4; j++ {
				var want float64
				for p := 0; p < k; p++ {
					want += float64(rows[i][p]) * float64(rows[4+j][p])
				}
				if got := float64(out[4*i+j]); !(math.Abs(got-want) <= eps*float64(k+1)) {
					t.Fatalf("%s k=%d: out[%d][%d] = %g, want %g", name, k, i, j, got, want)
				}
			}
		}
	}
}
