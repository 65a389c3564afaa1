//go:build !purego

package kernels

import "golang.org/x/sys/cpu"

const (
	haveSIMD = true
	panelXor = 0 // arm64 multiplies signed by signed: weights are stored as they are
)

// Assembly in neon_arm64.s.

//go:noescape
func sdot4x16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func smull2x16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func sdotGemv(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)

//go:noescape
func sdotGemv4(a *int8, nb, groups int, w *byte, ts, nt int, sc, gcorr, off, c *int32)

//go:noescape
func requantNEON(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64)

//go:noescape
func dwRowNEON(acc *int32, src *int8, w *int8, bias *int32, c16, cs, kh, kw, rowStride, pixStride, ow int)

var neonKernels = simdKernels{mr: 2, wideN: 16, wide: smull2x16, narrow: smull2x16, requant: requantNEON, dwRow8: dwRowNEON}

var neonDotKernels = simdKernels{mr: 4, wideN: 16, wide: sdot4x16, narrow: sdot4x16, gemv: sdotGemv, gemv4: sdotGemv4, requant: requantNEON, dwRow8: dwRowNEON}

func archImpls() []*impl {
	l := []*impl{newSIMDImpl("neon", &neonKernels)} // Advanced SIMD is mandatory on arm64
	if cpu.ARM64.HasASIMDDP {
		l = append(l, newSIMDImpl("neondot", &neonDotKernels))
	}
	return l
}
