//go:build !purego

package fgemm

//go:noescape
func kernS8x8NEON(kc int, a, b, c *float32, ldc int, load bool)

//go:noescape
func kernD8x4NEON(kc int, a, b, c *float64, ldc int, load bool)

//go:noescape
func kernS8x8NEONB(kc int, a, b, c *float32, ldc int, load bool, ldb int)

//go:noescape
func kernD8x4NEONB(kc int, a, b, c *float64, ldc int, load bool, ldb int)

var (
	neon32 = microKernel[float32]{name: "neon 8x8", mr: 8, nr: 8, kc: 256, mc: 64, nc: 1024, fn: kernS8x8NEON, fnB: kernS8x8NEONB}
	neon64 = microKernel[float64]{name: "neon 8x4", mr: 8, nr: 4, kc: 256, mc: 64, nc: 1024, fn: kernD8x4NEON, fnB: kernD8x4NEONB}
)

// NEON (Advanced SIMD) is part of every arm64 (ARMv8-A) core, so it needs
// no feature check.
func init() {
	kern32, kern64 = neon32, neon64
}

// available lists every kernel pair this machine can run, for tests.
func available() ([]microKernel[float32], []microKernel[float64]) {
	return []microKernel[float32]{portable32, neon32}, []microKernel[float64]{portable64, neon64}
}
