//go:build !purego

#include "textflag.h"

// Row epilogues of rowops.go (hand-written). n is a positive multiple of 8 in every function.

// func requantRowAVX512(dst *int8, src *int32, n int, m0, round int64, right uint64, zp, lo, hi int64)
// dst[i] = clamp(sat32((src[i]*m0 + round) >> right) + zp, lo, hi), 8 values per step: the
// accumulators sign-extended to int64 (VPMOVSXDQ), VPMULDQ (exact 32x32->64), VPADDQ,
// VPSRAQ (arithmetic), VPMOVSQD (saturating narrow to int32), then the clamp in int32 as
// clamp(s, lo-zp, hi-zp) + zp (|zp| <= 2^24: no wrap-around) and VPMOVDB.
TEXT ·requantRowAVX512(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPBROADCASTQ m0+24(FP), Z1
	VPBROADCASTQ round+32(FP), Z2
	VPBROADCASTQ right+40(FP), Z3
	MOVQ zp+48(FP), BX
	VPBROADCASTD BX, Y28
	MOVQ lo+56(FP), AX
	SUBQ BX, AX
	VPBROADCASTD AX, Y29
	MOVQ hi+64(FP), AX
	SUBQ BX, AX
	VPBROADCASTD AX, Y30

rq_loop:
	VPMOVSXDQ (SI), Z0
	VPMULDQ   Z1, Z0, Z0
	VPADDQ    Z2, Z0, Z0
	VPSRAVQ   Z3, Z0, Z0
	VPMOVSQD  Z0, Y0
	VPMAXSD   Y29, Y0, Y0
	VPMINSD   Y30, Y0, Y0
	VPADDD    Y28, Y0, Y0
	VPMOVDB   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $8, DI
	SUBQ      $8, CX
	JNZ       rq_loop
	VZEROUPPER
	RET

// func dequantRowAVX2(dst *float32, src *int32, sc *float32, n int)
// dst[i] = sc[i] * float32(src[i]): VCVTDQ2PS (round to nearest even, as Go's conversion)
// and VMULPS, 8 values per step.
TEXT ·dequantRowAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ sc+16(FP), DX
	MOVQ n+24(FP), CX

dq_loop:
	VCVTDQ2PS (SI), Y0
	VMULPS    (DX), Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DX
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       dq_loop
	VZEROUPPER
	RET

// func normRowAVX512(dst *int8, src *int8, n int, zIn int64, shift, r uint64, rf float64, m0, round, right, sgn *int64, zOut int64)
// The NormRequant stage, 8 channels per step in int64 lanes:
//   x = src - zIn; a = |x|<<shift + r/2 (< 2^53, exact in float64)
//   q = trunc(a / r) in float64 (VDIVPD, VCVTTPD2QQ): floor(a/r) or one more (the division
//       rounds to nearest; with a < 2^53 and r < 2^32 the quotient is never close enough to an
//       integer to round across it, but the remainder check below keeps the result exact for
//       any a < 2^53): rem = a - q*r (VPMULLQ), q-- where rem < 0, q++ where rem >= r
//   t = sat32(x < 0 ? -q : q)
//   y = sat32((t*m0 + round) >> right) per channel, (y ^ sgn) - sgn, clamp(y + zOut, -128, 127).
TEXT ·normRowAVX512(SB), NOSPLIT, $0-96
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPBROADCASTQ zIn+24(FP), Z20
	VPBROADCASTQ shift+32(FP), Z21
	MOVQ r+40(FP), AX
	VPBROADCASTQ AX, Z24      // r
	LEAQ -1(AX), BX
	VPBROADCASTQ BX, Z31      // r-1
	SHRQ $1, AX
	VPBROADCASTQ AX, Z22      // r/2
	VBROADCASTSD rf+48(FP), Z23
	MOVQ m0+56(FP), R8
	MOVQ round+64(FP), R9
	MOVQ right+72(FP), R10
	MOVQ sgn+80(FP), R11
	VPBROADCASTQ zOut+88(FP), Z28
	MOVQ $1, AX
	VPBROADCASTQ AX, Z27
	MOVQ $0x7fffffff, AX
	VPBROADCASTQ AX, Z25
	MOVQ $-0x80000000, AX
	VPBROADCASTQ AX, Z26
	MOVQ $-128, AX
	VPBROADCASTQ AX, Z29
	MOVQ $127, AX
	VPBROADCASTQ AX, Z30
	VPXORQ Z19, Z19, Z19

nr_loop:
	VPMOVSXBQ  (SI), Z0
	VPSUBQ     Z20, Z0, Z0        // x
	VPMOVQ2M   Z0, K1             // x < 0
	VPABSQ     Z0, Z1
	VPSLLVQ    Z21, Z1, Z1
	VPADDQ     Z22, Z1, Z1        // a
	VCVTQQ2PD  Z1, Z2
	VDIVPD     Z23, Z2, Z2
	VCVTTPD2QQ Z2, Z2             // q
	VPMULLQ    Z24, Z2, Z3
	VPSUBQ     Z3, Z1, Z3         // rem = a - q*r
	VPMOVQ2M   Z3, K2             // rem < 0
	VPSUBQ     Z27, Z2, K2, Z2
	VPCMPGTQ   Z31, Z3, K3        // rem > r-1
	VPADDQ     Z27, Z2, K3, Z2
	VPSUBQ     Z2, Z19, K1, Z2    // negate where x < 0
	VPMINSQ    Z25, Z2, Z2
	VPMAXSQ    Z26, Z2, Z2        // t
	VPMULDQ    (R8), Z2, Z2
	VPADDQ     (R9), Z2, Z2
	VPSRAVQ    (R10), Z2, Z2
	VPMINSQ    Z25, Z2, Z2
	VPMAXSQ    Z26, Z2, Z2        // y
	VMOVDQU64  (R11), Z5
	VPXORQ     Z5, Z2, Z2
	VPSUBQ     Z5, Z2, Z2
	VPADDQ     Z28, Z2, Z2
	VPMAXSQ    Z29, Z2, Z2
	VPMINSQ    Z30, Z2, Z2
	VPMOVQB    Z2, (DI)
	ADDQ       $8, SI
	ADDQ       $8, DI
	ADDQ       $64, R8
	ADDQ       $64, R9
	ADDQ       $64, R10
	ADDQ       $64, R11
	SUBQ       $8, CX
	JNZ        nr_loop
	VZEROUPPER
	RET
