//go:build !purego

#include "textflag.h"

// Attention inner products with AVX2 (hand-written; see attention.go). hd is a positive
// multiple of 16.

// func attnScoresAVX2(s *int32, q *int16, k *int8, n, hd int)
// s[t] = sum_d q[d]*k[t*hd+d]: 16 cache bytes sign-extended to int16 (VPMOVSXBW), VPMADDWD with
// the int16 query (pair sums in int32, exact), VPADDD; one horizontal sum per position.
TEXT ·attnScoresAVX2(SB), NOSPLIT, $0-40
	MOVQ s+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ hd+32(FP), BX

sc_row:
	VPXOR Y0, Y0, Y0
	XORQ  AX, AX
	MOVQ  SI, R8

sc_inner:
	VPMOVSXBW (DX)(AX*1), Y1
	VPMADDWD  (R8), Y1, Y1
	VPADDD    Y1, Y0, Y0
	ADDQ      $32, R8
	ADDQ      $16, AX
	CMPQ      AX, BX
	JLT       sc_inner

	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPADDD       X1, X0, X0
	VMOVD        X0, (DI)
	ADDQ         $4, DI
	ADDQ         BX, DX
	DECQ         CX
	JNZ          sc_row
	VZEROUPPER
	RET

// func attnValuesAVX2(o *int64, e *int32, v *int8, n, hd int)
// o[d] = sum_t e[t]*v[t*hd+d], 16 columns at a time: per position the weight is broadcast,
// 2x8 value bytes sign-extended to int32 (VPMOVSXBD), VPMULLD and VPADDD into int32 sums;
// after at most 15 positions (|e*v| <= 2^20*128, so 15 products stay below 2^31) the int32
// sums are widened (VPMOVSXDQ) and added to 16 int64 sums.
TEXT ·attnValuesAVX2(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ hd+32(FP), BX
	XORQ R9, R9

va_chunk:
	MOVQ  e+8(FP), SI
	MOVQ  v+16(FP), DX
	ADDQ  R9, DX
	MOVQ  n+24(FP), CX
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7

va_block:
	MOVQ    $15, R8
	CMPQ    CX, R8
	CMOVQLT CX, R8
	SUBQ    R8, CX
	VPXOR   Y0, Y0, Y0
	VPXOR   Y1, Y1, Y1

va_pos:
	VPBROADCASTD (SI), Y2
	VPMOVSXBD    (DX), Y3
	VPMULLD      Y2, Y3, Y3
	VPADDD       Y3, Y0, Y0
	VPMOVSXBD    8(DX), Y3
	VPMULLD      Y2, Y3, Y3
	VPADDD       Y3, Y1, Y1
	ADDQ         $4, SI
	ADDQ         BX, DX
	DECQ         R8
	JNZ          va_pos

	VPMOVSXDQ    X0, Y2
	VPADDQ       Y2, Y4, Y4
	VEXTRACTI128 $1, Y0, X0
	VPMOVSXDQ    X0, Y2
	VPADDQ       Y2, Y5, Y5
	VPMOVSXDQ    X1, Y2
	VPADDQ       Y2, Y6, Y6
	VEXTRACTI128 $1, Y1, X1
	VPMOVSXDQ    X1, Y2
	VPADDQ       Y2, Y7, Y7
	TESTQ        CX, CX
	JNZ          va_block

	LEAQ    (DI)(R9*8), AX
	VMOVDQU Y4, (AX)
	VMOVDQU Y5, 32(AX)
	VMOVDQU Y6, 64(AX)
	VMOVDQU Y7, 96(AX)
	ADDQ    $16, R9
	CMPQ    R9, BX
	JLT     va_chunk
	VZEROUPPER
	RET
