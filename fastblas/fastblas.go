// Package fastblas is a gonum BLAS implementation whose level-3 Sgemm and
// Dgemm run on the SIMD kernels of github.com/qatgo/qatgo/fgemm;
// every other routine is gonum's pure Go implementation.
//
// Gorgonia (v0.9.18) and gorgonia.org/tensor (v0.9.24) each keep a package
// level BLAS, gonum's by default. gorgonia.Use sets both (it calls
// tensor.Use), so a training program calls Install once, before building
// graphs, and every MatMul, Mul and Conv2d then uses fgemm:
//
//	restore := fastblas.Install()
//	defer restore()
package fastblas

import (
	"fmt"

	"github.com/qatgo/qatgo/fgemm"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Implementation is gonum's BLAS with Sgemm and Dgemm replaced by fgemm. Its
// zero value is ready to use.
type Implementation struct {
	gonum.Implementation
}

var (
	_ blas.Float32 = Implementation{}
	_ blas.Float64 = Implementation{}
	_ G.BLAS       = Implementation{}
	_ tensor.BLAS  = Implementation{}
)

func isTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic(fmt.Sprintf("fastblas: bad transpose %q", byte(t)))
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices with gonum's semantics (ConjTrans is Trans for real matrices). It
// panics on bad arguments as gonum does.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	fgemm.Sgemm(isTrans(tA), isTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Dgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float64
// matrices with gonum's semantics. It panics on bad arguments as gonum does.
func (Implementation) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	fgemm.Dgemm(isTrans(tA), isTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Install makes Implementation the BLAS of Gorgonia and gorgonia.org/tensor
// and returns a function that restores the previous ones. Call it before
// running graphs; it is not safe to call while a graph is running.
func Install() (restore func()) {
	prevG := G.WhichBLAS()
	prevT := tensor.WhichBLAS()
	G.Use(Implementation{})
	return func() {
		G.Use(prevG)
		tensor.Use(prevT)
	}
}
