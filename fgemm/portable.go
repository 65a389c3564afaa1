package fgemm

import "unsafe"

var (
	portable32 = microKernel[float32]{name: "go 4x4", mr: 4, nr: 4, kc: 256, mc: 64, nc: 1024, fn: kernPortable[float32]}
	portable64 = microKernel[float64]{name: "go 4x4", mr: 4, nr: 4, kc: 256, mc: 64, nc: 1024, fn: kernPortable[float64]}
)

// kernPortable is the portable 4x4 micro-kernel: C[0:4, 0:4] = A*B (+ C
// when load) for a kc x 4 A panel (packed by column) and a kc x 4 B panel.
func kernPortable[T Float](kc int, a, b, c *T, ldc int, load bool) {
	pa := unsafe.Slice(a, 4*kc)
	pb := unsafe.Slice(b, 4*kc)
	pc := unsafe.Slice(c, 3*ldc+4)
	var c00, c01, c02, c03, c10, c11, c12, c13 T
	var c20, c21, c22, c23, c30, c31, c32, c33 T
	for p := 0; p < kc; p++ {
		av := pa[4*p : 4*p+4 : 4*p+4]
		bv := pb[4*p : 4*p+4 : 4*p+4]
		a0, a1, a2, a3 := av[0], av[1], av[2], av[3]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	if !load {
		clear(pc[0:4])
		clear(pc[ldc : ldc+4])
		clear(pc[2*ldc : 2*ldc+4])
		clear(pc[3*ldc : 3*ldc+4])
	}
	r := pc[0:4:4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = pc[ldc : ldc+4 : ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
	r = pc[2*ldc : 2*ldc+4 : 2*ldc+4]
	r[0] += c20
	r[1] += c21
	r[2] += c22
	r[3] += c23
	r = pc[3*ldc : 3*ldc+4 : 3*ldc+4]
	r[0] += c30
	r[1] += c31
	r[2] += c32
	r[3] += c33
}
