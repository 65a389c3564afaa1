package fastblas

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestSgemmDgemmMatchGonum checks both overrides against gonum for every
// transpose flag, including ConjTrans.
func TestSgemmDgemmMatchGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var ref gonum.Implementation
	var impl Implementation
	flags := []blas.Transpose{blas.NoTrans, blas.Trans, blas.ConjTrans}
	for _, tA := range flags {
		for _, tB := range flags {
			m, n, k := 37, 53, 29
			lda, ldb, ldc := 60, 61, 62
			a := make([]float64, 60*60)
			b := make([]float64, 61*61)
			c := make([]float64, m*ldc)
			for _, x := range [][]float64{a, b, c} {
				for i := range x {
					x[i] = r.Float64() - 0.5
				}
			}
			a32, b32, c32 := f32(a), f32(b), f32(c)
			want32, want64 := f32(c), append([]float64(nil), c...)
			ref.Sgemm(tA, tB, m, n, k, 1.5, a32, lda, b32, ldb, 0.5, want32, ldc)
			impl.Sgemm(tA, tB, m, n, k, 1.5, a32, lda, b32, ldb, 0.5, c32, ldc)
			ref.Dgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, want64, ldc)
			impl.Dgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, c, ldc)
			for i := range c {
				if d := math.Abs(float64(c32[i] - want32[i])); d > 1e-5 {
					t.Fatalf("Sgemm %c%c: C[%d] = %g, gonum %g", tA, tB, i, c32[i], want32[i])
				}
				if d := math.Abs(c[i] - want64[i]); d > 1e-13 {
					t.Fatalf("Dgemm %c%c: C[%d] = %g, gonum %g", tA, tB, i, c[i], want64[i])
				}
			}
		}
	}
}

func f32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

func TestBadTransposePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	var impl Implementation
	x := make([]float32, 4)
	impl.Sgemm('x', blas.NoTrans, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2)
}

// TestInstall checks that Install switches both Gorgonia's and tensor's
// BLAS, that a Gorgonia matrix product then matches the gonum result, and
// that restore switches back.
func TestInstall(t *testing.T) {
	restore := Install()
	if _, ok := G.WhichBLAS().(Implementation); !ok {
		t.Fatalf("gorgonia BLAS is %T", G.WhichBLAS())
	}
	if _, ok := tensor.WhichBLAS().(Implementation); !ok {
		t.Fatalf("tensor BLAS is %T", tensor.WhichBLAS())
	}
	a := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	b := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking([]float32{7, 8, 9, 10, 11, 12}))
	c, err := tensor.MatMul(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{58, 64, 139, 154}
	for i, v := range c.Data().([]float32) {
		if v != want[i] {
			t.Fatalf("MatMul = %v, want %v", c.Data(), want)
		}
	}
	restore()
	if _, ok := G.WhichBLAS().(Implementation); ok {
		t.Fatal("restore did not restore gorgonia's BLAS")
	}
	if _, ok := tensor.WhichBLAS().(Implementation); ok {
		t.Fatal("restore did not restore tensor's BLAS")
	}
}
