// Package fgemm is a float32 and float64 general matrix multiply (GEMM) for
// row-major matrices with BLAS semantics:
//
//	C = alpha * op(A) * op(B) + beta * C
//
// where op(X) is X or its transpose, op(A) is m x k, op(B) is k x n and C is
// m x n. Every matrix is stored row-major with a leading dimension (row
// stride, in elements) that is at least its number of stored columns. As in
// reference BLAS, when beta is zero C is not read (NaN or Inf in C are
// overwritten), and when alpha is zero or k is zero A and B are not read.
//
// The implementation follows the BLIS/GotoBLAS design: op(B) is packed into
// panels of NR columns and op(A) into panels of MR rows (scaled by alpha),
// and a register-blocked micro-kernel written in Go assembly computes each
// MR x NR tile of C. The micro-kernel is chosen at start-up from the CPU's
// features (golang.org/x/sys/cpu):
//
//	amd64: AVX-512F (8x48 float32, 8x24 float64), else AVX2+FMA (4x24, 4x12)
//	arm64: NEON (8x8 float32, 8x4 float64)
//	other: portable Go (4x4)
//
// Products with at most two rows of tiles (m <= 2*MR) and B not transposed
// read B in place instead of packing it (amd64 and arm64), since packing would
// be a large part of their work; such thin products are what a
// convolution's forward pass computes per image.
//
// Products C = A*B^T with a small C (at most 2048 elements) and a long k
// (at least 64), such as weight gradients, skip packing on amd64 (AVX-512
// and AVX2): a 4x4 dot-product kernel reads the k-contiguous rows of A and
// B directly, with masked loads for the tail.
//
// The build tag purego forces the portable Go kernels. Large products are
// split between goroutines (see SetThreads); small ones run on the calling
// goroutine.
//
// Invalid dimensions, leading dimensions or short slices are programmer
// errors and make Sgemm and Dgemm panic, as gonum's BLAS does.
//
// The package imports only the standard library and golang.org/x/sys.
package fgemm

//go:generate go run gen_asm.go
