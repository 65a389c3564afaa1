//go:build !purego

#include "textflag.h"

// func attnExpAVX512(ex *int32, s *int32, n int, mant, sh uint64, tab *int64) (sum int64)
// The softmax weights of one attention head (attentionExp): with mx = max s[t],
//   u     = ((mx - s[t]) * mant) >> sh      (expScale.apply: mx - s < 2^32 and mant < 2^32,
//                                           so the product fits 64 bits; VPSRLVQ gives 0 for
//                                           sh >= 64 as apply does)
//   ex[t] = exp2NegQ16(u)                   (tab = exp2Table; a shift count >= 64 gives 0, which
//                                           is the table form's 0 for u >= 31<<16)
// and returns sum ex[t]. 8 positions per step in int64 lanes, the last step masked; n >= 1.
TEXT ·attnExpAVX512(SB), NOSPLIT, $0-56
	MOVQ ex+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ tab+40(FP), R8

	// Pass 1: mx (lanes outside the row keep MinInt64).
	MOVQ $-0x8000000000000000, AX
	VPBROADCASTQ AX, Z20
	VMOVDQA64 Z20, Z9
	MOVQ SI, R9
ex_max:
	MOVQ $0xff, AX
	CMPQ CX, $8
	JGE  ex_maxfull
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
ex_maxfull:
	KMOVB AX, K1
	VMOVDQA64 Z20, Z0
	VPMOVSXDQ (R9), K1, Z0
	VPMAXSQ Z0, Z9, Z9
	ADDQ $32, R9
	SUBQ $8, CX
	JGT  ex_max
	MOVQ n+16(FP), CX
	VEXTRACTI64X4 $1, Z9, Y1
	VPMAXSQ Y1, Y9, Y9
	VEXTRACTI128 $1, Y9, X1
	VPMAXSQ X1, X9, X9
	VPSHUFD $0x4e, X9, X1
	VPMAXSQ X1, X9, X9
	VPBROADCASTQ X9, Z21      // mx

	VPBROADCASTQ mant+24(FP), Z22
	VPBROADCASTQ sh+32(FP), Z23
	MOVQ $0xff, AX
	VPBROADCASTQ AX, Z24
	MOVQ $128, AX
	VPBROADCASTQ AX, Z25
	MOVQ $10, AX
	VPBROADCASTQ AX, Z26
	MOVQ $1, AX
	VPBROADCASTQ AX, Z27
	VPXORQ Z10, Z10, Z10      // sum

ex_loop:
	MOVQ $0xff, AX
	CMPQ CX, $8
	JGE  ex_full
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
ex_full:
	KMOVB AX, K1
	VMOVDQA64 Z21, Z0
	VPMOVSXDQ (SI), K1, Z0    // lanes outside the row: s = mx
	VPSUBQ   Z0, Z21, Z0      // d = mx - s
	VPMULUDQ Z22, Z0, Z0
	VPSRLVQ  Z23, Z0, Z0      // u
	VPSRLQ   $16, Z0, Z1      // n
	VPSRLQ   $8, Z0, Z2
	VPANDQ   Z24, Z2, Z2      // j
	VPANDQ   Z24, Z0, Z3      // l
	KXNORB   K2, K2, K2
	VPGATHERQQ (R8)(Z2*8), K2, Z4    // T[j]
	KXNORB   K3, K3, K3
	VPGATHERQQ 8(R8)(Z2*8), K3, Z5   // T[j+1]
	VPSUBQ   Z4, Z5, Z5
	VPMULLQ  Z3, Z5, Z5
	VPADDQ   Z25, Z5, Z5
	VPSRAQ   $8, Z5, Z5
	VPADDQ   Z5, Z4, Z4       // v
	VPADDQ   Z26, Z1, Z1      // n + 10
	VPSUBQ   Z27, Z1, Z6
	VPSLLVQ  Z6, Z27, Z6      // 1 << (n+9)
	VPADDQ   Z6, Z4, Z4
	VPSRLVQ  Z1, Z4, Z4       // e
	VPMOVQD  Z4, K1, (DI)
	VPADDQ   Z4, Z10, K1, Z10
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JGT  ex_loop

	VEXTRACTI64X4 $1, Z10, Y1
	VPADDQ Y1, Y10, Y10
	VEXTRACTI128 $1, Y10, X1
	VPADDQ X1, X10, X10
	VPSHUFD $0x4e, X10, X1
	VPADDQ X1, X10, X10
	VMOVQ X10, AX
	MOVQ AX, sum+48(FP)
	VZEROUPPER
	RET

// func ropeAVX512(dst *int8, src *int8, hd, heads int, c2, s2 *int32, zIn, m0, round int64, right uint64, zOut int64)
// RoPE of one row (ropeRowFast), 8 values (4 pairs) per step in int64 lanes: with x = src - zIn
// and x~ the pair partner (VPSHUFD swaps the qwords of each 128-bit lane),
//   v   = x*c2[i] + x~*s2[i]             (c2 = cos, cos; s2 = -sin, +sin per pair: x0*c - x1*s
//                                         and x0*s + x1*c exactly, VPMULDQ)
//   a   = (v + 2^14 + (v>>63)) >> 15     (roundShift64(v, 15))
//   out = clamp(sat32((a*m0 + round) >> right) + zOut, -128, 127)
// c2/s2 hold hd values (one position) and serve every head; hd is a positive multiple of 8.
TEXT ·ropeAVX512(SB), NOSPLIT, $0-88
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ heads+24(FP), R12
	VPBROADCASTQ zIn+48(FP), Z20
	VPBROADCASTQ m0+56(FP), Z21
	VPBROADCASTQ round+64(FP), Z22
	VPBROADCASTQ right+72(FP), Z23
	VPBROADCASTQ zOut+80(FP), Z24
	MOVQ $0x4000, AX
	VPBROADCASTQ AX, Z25
	MOVQ $0x7fffffff, AX
	VPBROADCASTQ AX, Z26
	MOVQ $-0x80000000, AX
	VPBROADCASTQ AX, Z27
	MOVQ $-128, AX
	VPBROADCASTQ AX, Z28
	MOVQ $127, AX
	VPBROADCASTQ AX, Z29
rope_head:
	MOVQ c2+32(FP), R8
	MOVQ s2+40(FP), R9
	MOVQ hd+16(FP), CX
rope_loop:
	VPMOVSXBQ (SI), Z0
	VPSUBQ    Z20, Z0, Z0
	VPSHUFD   $0x4e, Z0, Z1
	VPMOVSXDQ (R8), Z2
	VPMOVSXDQ (R9), Z3
	VPMULDQ   Z2, Z0, Z0
	VPMULDQ   Z3, Z1, Z1
	VPADDQ    Z1, Z0, Z0
	VPSRAQ    $63, Z0, Z4
	VPADDQ    Z25, Z0, Z0
	VPADDQ    Z4, Z0, Z0
	VPSRAQ    $15, Z0, Z0
	VPMULDQ   Z21, Z0, Z0
	VPADDQ    Z22, Z0, Z0
	VPSRAVQ   Z23, Z0, Z0
	VPMINSQ   Z26, Z0, Z0
	VPMAXSQ   Z27, Z0, Z0
	VPADDQ    Z24, Z0, Z0
	VPMAXSQ   Z28, Z0, Z0
	VPMINSQ   Z29, Z0, Z0
	VPMOVQB   Z0, (DI)
	ADDQ $8, SI
	ADDQ $8, DI
	ADDQ $32, R8
	ADDQ $32, R9
	SUBQ $8, CX
	JNZ  rope_loop
	DECQ R12
	JNZ  rope_head
	VZEROUPPER
	RET
