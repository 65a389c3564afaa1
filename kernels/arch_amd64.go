//go:build !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

const (
	haveSIMD = true
	// panelXor turns the signed weights into the unsigned operand of VPDPBUSD (w+128).
	panelXor = 0x80
)

// Assembly in avx512_amd64.s, avx2_amd64.s.

//go:noescape
func vnni8x48(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func vnni8x16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func vnni8x48q(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int8, ldc int, ep *int64, zp, lo, hi int64)

//go:noescape
func vnni8x32(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func vnni8x32q(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int8, ldc int, ep *int64, zp, lo, hi int64)

//go:noescape
func vnni8x16q(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int8, ldc int, ep *int64, zp, lo, hi int64)

//go:noescape
func vnniGemv(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)

//go:noescape
func vnniGemv4(a *int8, nb, groups int, w *byte, ts, nt int, sc, gcorr, off, c *int32)

//go:noescape
func peakVPDPBUSD(n int)

//go:noescape
func peakAVX2MADD(n int)

//go:noescape
func sumRowsAVX512(dst *int32, a *int8, lda int, rows int, n int)

//go:noescape
func sumInt8AVX512(p *int8, n int) int32

//go:noescape
func requantAVX512(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64, corr *int32, cs int)

//go:noescape
func vnniConv8x16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int, kgs int)

//go:noescape
func avxvnni6x16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func avxvnniGemv(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)

// EVEX twins of the AVX-VNNI kernels (tests only; see avx2_amd64.s).
//
//go:noescape
func avxvnni6x16Evex(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func avxvnniGemvEvex(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)

//go:noescape
func avx2x6x16(a *int16, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func avx2w16x6x16(a *int16, lda int, w *int16, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func avx2x4x16(a *int16, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)

//go:noescape
func avx2Conv6x16(a *int16, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int, kgs int)

//go:noescape
func requantAVX2(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64)

//go:noescape
func requant8AVX2(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64)

//go:noescape
func avx2Gemv4(a *int8, nb, groups int, w *byte, ts, nt int, sc, gcorr, off, c *int32)

//go:noescape
func dwRowAVX2(acc *int32, src *int8, w *int16, bias *int32, c16, cs, kh, kw, rowStride, pixStride, ow int)

//go:noescape
func sext16AVX2(dst *int16, src *int8, n int)

//go:noescape
func avx2Gemv(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)

//go:noescape
func sumInt8AVX2(p *int8, n int) int32

//go:noescape
func quantizeF32AVX2(dst *int8, src *float32, n int, scale float32, zp, lo, hi float32)

//go:noescape
func allFiniteAVX2(src *float32, n int) bool

func archImpls() []*impl {
	var l []*impl
	x := &cpu.X86
	if x.HasAVX2 {
		p := newSIMDImpl("avx2", &avx2Kernels)
		p.convPool = convPoolAVX2
		l = append(l, p)
	}
	if x.HasAVX2 && x.HasAVXVNNI {
		p := newSIMDImpl("avxvnni", &avxvnniKernels)
		p.convPool = convPoolAVXVNNI
		l = append(l, p)
	}
	if x.HasAVX512F && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL && x.HasAVX512VNNI {
		p := newSIMDImpl("avx512vnni", &avx512Kernels)
		p.convPool = convPoolVNNI
		p.depthwise = depthwiseVNNI
		l = append(l, p)
	}
	for _, p := range l { // every x86 path has AVX2
		p.quantF32, p.allFinite = quantizeF32AVX2, allFiniteAVX2
		p.attnScores, p.attnValues = attnScoresAVX2, attnValuesAVX2
	}
	return l
}

var avx512Kernels = simdKernels{
	mr: 8, wideN: 48,
	wide: vnni8x48, narrow: vnni8x16, gemv: vnniGemv, wideQ: vnni8x48q, narrowQ: vnni8x16q,
	mid: vnni8x32, midQ: vnni8x32q,
	sum: sumInt8AVX512, sumRows: sumRowsAVX512, requant: requantAVX512NoCorr, gemv4: vnniGemv4,
	requantCorr: requantAVX512, convKernel: vnniConv8x16, dwRow16: dwRowAVX2,
}

var avxvnniKernels = simdKernels{
	mr: 6, wideN: 16,
	wide: avxvnni6x16, narrow: avxvnni6x16, gemv: avxvnniGemv,
	sum: sumInt8AVX2, requant: requant8AVX2, gemv4: avx2Gemv4, dwRow16: dwRowAVX2,
}

var avx2Kernels = simdKernels{
	mr: 6, wideN: 16,
	wide: avx2Wide6, narrow: avx2Wide6, gemv: avx2Gemv,
	sum: sumInt8AVX2, sext16: sext16AVX2, requant: requant8AVX2, gemv4: avx2Gemv4, dwRow16: dwRowAVX2,
	convKernel: avx2Conv6, wide16: avx2W16,
}

// avx2W16 adapts avx2w16x6x16 (int16 activations, int16 weight panel) to the kernel type.
func avx2W16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int) {
	avx2w16x6x16((*int16)(unsafe.Pointer(a)), lda, (*int16)(unsafe.Pointer(w)), ts, kg, off, roff, c, ldc)
}

// avx2Conv6 adapts avx2Conv6x16 (int16 activations, widened padded image) to the kernel type.
func avx2Conv6(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int, kgs int) {
	avx2Conv6x16((*int16)(unsafe.Pointer(a)), lda, w, ts, kg, off, roff, c, ldc, kgs)
}

// avx2Wide6 adapts avx2x6x16 (int16 activations) to the kernel type.
func avx2Wide6(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int) {
	avx2x6x16((*int16)(unsafe.Pointer(a)), lda, w, ts, kg, off, roff, c, ldc)
}

// avx2Wide adapts avx2x4x16 (int16 activations, see simdKernels.sext16) to the kernel type.
func avx2Wide(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int) {
	avx2x4x16((*int16)(unsafe.Pointer(a)), lda, w, ts, kg, off, roff, c, ldc)
}

var zeroCorr int32

func requantAVX512NoCorr(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64) {
	requantAVX512(dst, ldd, src, lds, rows, m0, sh, n, zp, lo, hi, &zeroCorr, 0)
}
