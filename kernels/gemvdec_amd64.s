//go:build !purego

#include "textflag.h"

// The decode form of GEMV on the avx512vnni path (gemvdec_amd64.go, hand-written): the group
// sums of the W4A8 correction and the epilogue on a precomputed per-channel table.

// func groupSums8AVX512(dst *int32, a *int8, groups, nb int)
// dst[g] = 8 * sum of the 8*nb signed bytes a[8*nb*g:8*nb*(g+1)] (the gcorr of vnniGemv4): per
// block of 8 bytes one VPDPBUSD of the byte 8 (u8) with the activations (s8) into two dword
// lanes (exact), then the two lanes added.
TEXT ·groupSums8AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ groups+16(FP), CX
	MOVQ nb+24(FP), DX
	MOVL $0x08080808, AX
	VPBROADCASTD AX, X31

gs_group:
	VPXORD X0, X0, X0
	MOVQ   DX, R8

gs_block:
	VMOVQ    (SI), X1
	VPDPBUSD X1, X31, X0
	ADDQ     $8, SI
	DECQ     R8
	JNZ      gs_block
	VPSHUFD  $0x55, X0, X1
	VPADDD   X1, X0, X0
	VMOVD    X0, (DI)
	ADDQ     $4, DI
	DECQ     CX
	JNZ      gs_group
	RET

// func requantEpAVX512(dst *int8, src *int32, n int, ep *int64, corr, zp, lo, hi int64)
// dst[j] = clamp(sat32(((src[j]+corr)*M0[j] + round[j]) >> total[j]) + zp, lo, hi) for
// j < n (a positive multiple of 8), with ep in the layout of epTable (per 8 channels: 8 M0,
// 8 rounding terms, 8 right shifts, int64) and src+corr wrapping in int32 like the
// accumulation. The caller guarantees that lo-zp and hi-zp fit int32 (Requant.int32Safe):
// clamp(s+zp, lo, hi) == clamp(s, lo-zp, hi-zp)+zp, as in requantAVX512.
TEXT ·requantEpAVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ ep+24(FP), R8
	MOVQ corr+32(FP), AX
	VPBROADCASTD AX, Y27
	MOVQ zp+40(FP), BX
	VPBROADCASTD BX, Y28
	MOVQ lo+48(FP), AX
	SUBQ BX, AX
	VPBROADCASTD AX, Y29
	MOVQ hi+56(FP), AX
	SUBQ BX, AX
	VPBROADCASTD AX, Y30

rqe_loop:
	VMOVDQU32 (SI), Y0
	VPADDD    Y27, Y0, Y0
	VPMOVSXDQ Y0, Z0
	VPMULDQ   (R8), Z0, Z0
	VPADDQ    64(R8), Z0, Z0
	VPSRAVQ   128(R8), Z0, Z0
	VPMOVSQD  Z0, Y0
	VPMAXSD   Y29, Y0, Y0
	VPMINSD   Y30, Y0, Y0
	VPADDD    Y28, Y0, Y0
	VPMOVDB   Y0, (DI)
	ADDQ      $32, SI
	ADDQ      $192, R8
	ADDQ      $8, DI
	SUBQ      $8, CX
	JNZ       rqe_loop
	VZEROUPPER
	RET
