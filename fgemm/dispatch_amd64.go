//go:build !purego

package fgemm

import "golang.org/x/sys/cpu"

//go:noescape
func kernS8x48AVX512(kc int, a, b, c *float32, ldc int, load bool)

//go:noescape
func kernD8x24AVX512(kc int, a, b, c *float64, ldc int, load bool)

//go:noescape
func kernS4x24AVX2(kc int, a, b, c *float32, ldc int, load bool)

//go:noescape
func kernD4x12AVX2(kc int, a, b, c *float64, ldc int, load bool)

//go:noescape
func kernS8x48AVX512B(kc int, a, b, c *float32, ldc int, load bool, ldb int)

//go:noescape
func kernD8x24AVX512B(kc int, a, b, c *float64, ldc int, load bool, ldb int)

//go:noescape
func kernS4x24AVX2B(kc int, a, b, c *float32, ldc int, load bool, ldb int)

//go:noescape
func kernD4x12AVX2B(kc int, a, b, c *float64, ldc int, load bool, ldb int)

//go:noescape
func dotS4x4AVX512(k int, a, b *[4]*float32, out *[16]float32)

//go:noescape
func dotD4x4AVX512(k int, a, b *[4]*float64, out *[16]float64)

//go:noescape
func dotS4x4AVX2(k int, a, b *[4]*float32, out *[16]float32)

//go:noescape
func dotD4x4AVX2(k int, a, b *[4]*float64, out *[16]float64)

var (
	avx512_32 = microKernel[float32]{name: "avx512 8x48", mr: 8, nr: 48, kc: 256, mc: 128, nc: 3072, fn: kernS8x48AVX512, fnB: kernS8x48AVX512B, dot: dotS4x4AVX512}
	avx512_64 = microKernel[float64]{name: "avx512 8x24", mr: 8, nr: 24, kc: 256, mc: 64, nc: 1536, fn: kernD8x24AVX512, fnB: kernD8x24AVX512B, dot: dotD4x4AVX512}
	avx2_32   = microKernel[float32]{name: "avx2 4x24", mr: 4, nr: 24, kc: 256, mc: 96, nc: 3072, fn: kernS4x24AVX2, fnB: kernS4x24AVX2B, dot: dotS4x4AVX2}
	avx2_64   = microKernel[float64]{name: "avx2 4x12", mr: 4, nr: 12, kc: 256, mc: 48, nc: 1536, fn: kernD4x12AVX2, fnB: kernD4x12AVX2B, dot: dotD4x4AVX2}
)

var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA
var hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F

func init() {
	switch {
	case hasAVX512:
		kern32, kern64 = avx512_32, avx512_64
	case hasAVX2:
		kern32, kern64 = avx2_32, avx2_64
	}
}

// available lists every kernel pair this machine can run, for tests.
func available() ([]microKernel[float32], []microKernel[float64]) {
	k32 := []microKernel[float32]{portable32}
	k64 := []microKernel[float64]{portable64}
	if hasAVX2 {
		k32 = append(k32, avx2_32)
		k64 = append(k64, avx2_64)
	}
	if hasAVX512 {
		k32 = append(k32, avx512_32)
		k64 = append(k64, avx512_64)
	}
	return k32, k64
}
