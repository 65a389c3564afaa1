package fgemm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Float is the set of element types that fgemm multiplies.
type Float interface {
	~float32 | ~float64
}

// microKernel describes one register-blocked micro-kernel and the cache
// blocking used around it.
type microKernel[T Float] struct {
	name   string
	mr, nr int // tile rows and columns
	kc     int // depth of a packed panel
	mc     int // rows of op(A) packed at once (multiple of mr)
	nc     int // columns of op(B) packed at once (multiple of nr)
	// fn computes C[0:mr, 0:nr] = Apanel * Bpanel (+ C when load) where
	// Apanel is kc x mr packed by column (mr values per k) and Bpanel is
	// kc x nr packed by row; c has row stride ldc elements and is not read
	// when load is false.
	fn func(kc int, a, b, c *T, ldc int, load bool)
	// fnB, when not nil, is fn reading B in place (row p at b[p*ldb]) for
	// products with few rows, where packing B would cost a large part of
	// the arithmetic.
	fnB func(kc int, a, b, c *T, ldc int, load bool, ldb int)
	// dot, when not nil, computes out[4*i+j] = dot(a[i][0:k], b[j][0:k]):
	// used for A*B^T products with a small output and a long k (weight
	// gradients), where packing both operands for fn would cost more than
	// the arithmetic.
	dot func(k int, a, b *[4]*T, out *[16]T)
}

// dotMaxOutput and dotMinK select the dot-product path for C = A*B^T:
// at most this many elements of C and at least this long a k.
const (
	dotMaxOutput = 2048
	dotMinK      = 64
)

// Kernels in use, set by the architecture specific init (dispatch_*.go).
var (
	kern32 = portable32
	kern64 = portable64
)

var threads atomic.Int64

// SetThreads sets the maximum number of goroutines one GEMM call may use
// and returns the previous setting. n <= 0 means runtime.GOMAXPROCS(0),
// which is the default.
func SetThreads(n int) int {
	return int(threads.Swap(int64(n)))
}

func maxThreads() int {
	n := int(threads.Load())
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return n
}

// parallelFlops is the smallest product (2*m*n*k floating-point operations)
// that is split between goroutines: below it the work takes a few tens of
// microseconds and goroutine start-up and cache sharing eat the gain. It is
// a variable so that tests can exercise the parallel path on small inputs.
var parallelFlops = float64(1 << 22)

// Kernel returns the name of the float32 and float64 micro-kernels in use,
// e.g. "avx512 8x48" and "avx512 8x24".
func Kernel() (f32, f64 string) { return kern32.name, kern64.name }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, where op(A) is m x k (A is stored k x m when transA), op(B) is
// k x n (B is stored n x k when transB) and C is m x n. lda, ldb and ldc are
// the row strides of the stored matrices. It panics on negative sizes, a
// leading dimension smaller than the stored row length, or a slice too
// short for its matrix.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(&kern32, maxThreads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Dgemm is Sgemm for float64 matrices.
func Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gemm(&kern64, maxThreads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkMatrix panics unless x can hold a rows x cols matrix with stride ld.
func checkMatrix[T Float](name string, x []T, rows, cols, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("fgemm: ld%s = %d < max(1, %d)", name, ld, cols))
	}
	if rows > 0 && cols > 0 && len(x) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("fgemm: len(%s) = %d, need %d for %dx%d with stride %d", name, len(x), (rows-1)*ld+cols, rows, cols, ld))
	}
}

func gemm[T Float](kern *microKernel[T], nthreads int, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("fgemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	if transA {
		checkMatrix("a", a, k, m, lda)
	} else {
		checkMatrix("a", a, m, k, lda)
	}
	if transB {
		checkMatrix("b", b, n, k, ldb)
	} else {
		checkMatrix("b", b, k, n, ldb)
	}
	checkMatrix("c", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	// With beta == 0 the first k block overwrites C (the kernels do not
	// read it), otherwise C is scaled once and the blocks accumulate.
	overwrite := beta == 0
	if !overwrite {
		scaleC(m, n, beta, c, ldc)
	}
	if kern.dot != nil && !transA && transB && k >= dotMinK && m*n <= dotMaxOutput {
		dotGemm(kern, m, n, k, alpha, a, lda, b, ldb, c, ldc, overwrite)
		return
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	t := nthreads
	if flops < parallelFlops {
		t = 1
	}
	if t > 1 {
		// Split the larger of m and n into t parts aligned to the tile.
		var wg sync.WaitGroup
		if m >= n {
			step := roundUp((m+t-1)/t, kern.mr)
			for i0 := 0; i0 < m; i0 += step {
				mb := min(step, m-i0)
				ao := i0 * lda
				if transA {
					ao = i0
				}
				wg.Go(func() {
					gemmSerial(kern, transA, transB, mb, n, k, alpha, a[ao:], lda, b, ldb, c[i0*ldc:], ldc, overwrite)
				})
			}
		} else {
			step := roundUp((n+t-1)/t, kern.nr)
			for j0 := 0; j0 < n; j0 += step {
				nb := min(step, n-j0)
				bo := j0
				if transB {
					bo = j0 * ldb
				}
				wg.Go(func() {
					gemmSerial(kern, transA, transB, m, nb, k, alpha, a, lda, b[bo:], ldb, c[j0:], ldc, overwrite)
				})
			}
		}
		wg.Wait()
		return
	}
	gemmSerial(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc, overwrite)
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

// scaleC sets C = beta*C, writing zeros when beta is zero so that NaNs in C
// are ignored as BLAS requires.
func scaleC[T Float](m, n int, beta T, c []T, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// workspace holds packing buffers for one goroutine.
type workspace[T Float] struct {
	a, b, tile []T
	// Row pointers and results of the dot kernel (kept here so that they
	// do not escape to the heap on every call).
	dotA, dotB [4]*T
	dotOut     [16]T
}

var pool32, pool64 sync.Pool

func getWorkspace[T Float](kern *microKernel[T]) *workspace[T] {
	var p *sync.Pool
	var zero T
	if _, ok := any(zero).(float32); ok {
		p = &pool32
	} else {
		p = &pool64
	}
	w, _ := p.Get().(*workspace[T])
	if w == nil {
		w = new(workspace[T])
	}
	if len(w.a) < kern.mc*kern.kc {
		w.a = make([]T, kern.mc*kern.kc)
	}
	if len(w.b) < kern.kc*kern.nc {
		w.b = make([]T, kern.kc*kern.nc)
	}
	if len(w.tile) < kern.mr*kern.nr {
		w.tile = make([]T, kern.mr*kern.nr)
	}
	return w
}

func putWorkspace[T Float](w *workspace[T]) {
	var zero T
	if _, ok := any(zero).(float32); ok {
		pool32.Put(w)
	} else {
		pool64.Put(w)
	}
}

// gemmSerial computes C += alpha*op(A)*op(B), or C = alpha*op(A)*op(B)
// when overwrite is set, on the calling goroutine.
func gemmSerial[T Float](kern *microKernel[T], transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, c []T, ldc int, overwrite bool) {
	w := getWorkspace(kern)
	defer putWorkspace(w)
	// With at most two rows of tiles, B is read in place instead of packed
	// (the packing would be a large part of the work); only a partial last
	// panel is packed.
	direct := kern.fnB != nil && !transB && m <= 2*kern.mr
	for jc := 0; jc < n; jc += kern.nc {
		nb := min(kern.nc, n-jc)
		for pc := 0; pc < k; pc += kern.kc {
			kb := min(kern.kc, k-pc)
			var bdir []T
			if direct {
				full := nb - nb%kern.nr
				if full < nb {
					packB(w.b[full*kb:], false, b, ldb, pc, jc+full, kb, nb-full, kern.nr)
				}
				if full > 0 {
					bdir = b[pc*ldb+jc:]
				}
			} else {
				packB(w.b, transB, b, ldb, pc, jc, kb, nb, kern.nr)
			}
			for ic := 0; ic < m; ic += kern.mc {
				mb := min(kern.mc, m-ic)
				packA(w.a, transA, a, lda, ic, pc, mb, kb, kern.mr, alpha)
				macroKernel(kern, mb, nb, kb, w.a, w.b, w.tile, c[ic*ldc+jc:], ldc, !overwrite || pc > 0, bdir, ldb)
			}
		}
	}
}

// macroKernel runs the micro-kernel over a packed mb x kb block of op(A) and
// a packed kb x nb block of op(B), adding into C when load is set and
// overwriting it otherwise. When bdir is not nil, full panels of B are
// read from bdir (row stride ldb) instead of pb.
func macroKernel[T Float](kern *microKernel[T], mb, nb, kb int, pa, pb, tile []T, c []T, ldc int, load bool, bdir []T, ldb int) {
	mr, nr := kern.mr, kern.nr
	for jr := 0; jr < nb; jr += nr {
		nv := min(nr, nb-jr)
		direct := bdir != nil && nv == nr
		var bp *T
		if direct {
			bp = &bdir[jr]
		} else {
			bp = &pb[jr*kb]
		}
		run := func(ap, cp *T, ldc int) {
			if direct {
				kern.fnB(kb, ap, bp, cp, ldc, load, ldb)
			} else {
				kern.fn(kb, ap, bp, cp, ldc, load)
			}
		}
		for ir := 0; ir < mb; ir += mr {
			mv := min(mr, mb-ir)
			ap := &pa[ir*kb]
			if mv == mr && nv == nr {
				run(ap, &c[ir*ldc+jr], ldc)
				continue
			}
			// Edge tile: go through a full-size scratch tile.
			if load {
				for i := 0; i < mv; i++ {
					copy(tile[i*nr:i*nr+nv], c[(ir+i)*ldc+jr:])
				}
			}
			run(ap, &tile[0], nr)
			for i := 0; i < mv; i++ {
				copy(c[(ir+i)*ldc+jr:(ir+i)*ldc+jr+nv], tile[i*nr:])
			}
		}
	}
}

// packA packs rows i0..i0+mb and columns p0..p0+kb of op(A), times alpha,
// into panels of mr rows: panel r holds, for each p, the mr values
// op(A)[i0+r*mr+i][p0+p], rows past mb padded with zeros.
func packA[T Float](dst []T, transA bool, a []T, lda, i0, p0, mb, kb, mr int, alpha T) {
	for ir := 0; ir < mb; ir += mr {
		panel := dst[ir*kb : ir*kb+kb*mr]
		rows := min(mr, mb-ir)
		if rows < mr {
			clear(panel)
		}
		if !transA {
			for i := 0; i < rows; i++ {
				src := a[(i0+ir+i)*lda+p0:][:kb]
				for p, v := range src {
					panel[p*mr+i] = alpha * v
				}
			}
			continue
		}
		for p := 0; p < kb; p++ {
			src := a[(p0+p)*lda+i0+ir:][:rows]
			d := panel[p*mr : p*mr+rows]
			for i, v := range src {
				d[i] = alpha * v
			}
		}
	}
}

// packB packs rows p0..p0+kb and columns j0..j0+nb of op(B) into panels of
// nr columns: panel r holds, for each p, the nr values
// op(B)[p0+p][j0+r*nr+j], columns past nb padded with zeros.
func packB[T Float](dst []T, transB bool, b []T, ldb, p0, j0, kb, nb, nr int) {
	for jr := 0; jr < nb; jr += nr {
		panel := dst[jr*kb : jr*kb+kb*nr]
		cols := min(nr, nb-jr)
		if cols < nr {
			clear(panel)
		}
		if !transB {
			for p := 0; p < kb; p++ {
				copy(panel[p*nr:p*nr+cols], b[(p0+p)*ldb+j0+jr:])
			}
			continue
		}
		for j := 0; j < cols; j++ {
			src := b[(j0+jr+j)*ldb+p0:][:kb]
			for p, v := range src {
				panel[p*nr+j] = v
			}
		}
	}
}

// dotGemm computes C (+)= alpha * A * B^T for row-major A (m x k) and B
// (n x k), 4x4 tiles of dot products at a time. Rows past the edge repeat
// the last row and their results are dropped.
func dotGemm[T Float](kern *microKernel[T], m, n, k int, alpha T, a []T, lda int, b []T, ldb int, c []T, ldc int, overwrite bool) {
	w := getWorkspace(kern)
	defer putWorkspace(w)
	ap, bp, out := &w.dotA, &w.dotB, &w.dotOut
	for i0 := 0; i0 < m; i0 += 4 {
		for r := range ap {
			ap[r] = &a[min(i0+r, m-1)*lda]
		}
		for j0 := 0; j0 < n; j0 += 4 {
			for s := range bp {
				bp[s] = &b[min(j0+s, n-1)*ldb]
			}
			kern.dot(k, ap, bp, out)
			for r := 0; r < min(4, m-i0); r++ {
				crow := c[(i0+r)*ldc : (i0+r)*ldc+n]
				for s := 0; s < min(4, n-j0); s++ {
					sum := out[4*r+s]
					if overwrite {
						crow[j0+s] = alpha * sum
					} else {
						crow[j0+s] += alpha * sum
					}
				}
			}
		}
	}
}
