//go:build !purego

#include "textflag.h"

// func attnExpAVX512(ex *int32, s *int32, n int, mant, sh uint64, pair *int64) (sum int64)
// The softmax weights of one attention head (attentionExp): with mx = max s[t],
//   u     = ((mx - s[t]) * mant) >> sh      (expScale.apply: mx - s < 2^32 and mant < 2^32,
//                                           so the product fits 64 bits; VPSRLVQ gives 0 for
//                                           sh >= 64 as apply does)
//   ex[t] = exp2NegQ16(u)                   (pair = exp2Pairs: exp2Table[j] and the difference
//                                           to the next entry in one gather; a shift count >= 64
//                                           gives 0, which is the table form's 0 for u >= 31<<16)
// and returns sum ex[t]. 8 positions per step in int64 lanes, the last step masked; n >= 1.
TEXT ·attnExpAVX512(SB), NOSPLIT, $0-56
	MOVQ ex+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ pair+40(FP), R8

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
	MOVQ $0xffffffff, AX
	VPBROADCASTQ AX, Z28
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
	VPGATHERQQ (R8)(Z2*8), K2, Z4    // pair[j]: T[j] | (T[j+1]-T[j])<<32
	VPSRAQ   $32, Z4, Z5              // T[j+1]-T[j]
	VPANDQ   Z28, Z4, Z4              // T[j]
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

// The 16-lane requantization tail of addLUTAVX512 and swigluAVX512: Z6 holds 16 int32 values;
// out = clamp(sat32((v*m0 + round) >> right), lo-zp, hi-zp) + zp, stored as 16 bytes at (DI).
#define REQUANT16 \
	VEXTRACTI64X4 $1, Z6, Y7; \
	VPMOVSXDQ Y6, Z8; \
	VPMOVSXDQ Y7, Z9; \
	VPMULDQ Z21, Z8, Z8; \
	VPMULDQ Z21, Z9, Z9; \
	VPADDQ Z22, Z8, Z8; \
	VPADDQ Z22, Z9, Z9; \
	VPSRAVQ Z23, Z8, Z8; \
	VPSRAVQ Z23, Z9, Z9; \
	VPMOVSQD Z8, Y8; \
	VPMOVSQD Z9, Y9; \
	VINSERTI64X4 $1, Y9, Z8, Z8; \
	VPMAXSD Z25, Z8, Z8; \
	VPMINSD Z26, Z8, Z8; \
	VPADDD Z24, Z8, Z8; \
	VPMOVDB Z8, (DI)

// Loads the epilogue constants (arguments m0, round, right, zp, lo, hi at the given frame
// offsets) into Z21-Z26 and 0x80 dwords into Z31.
#define LOADREQ(m0, round, right, zp, lo, hi) \
	VPBROADCASTQ m0, Z21; \
	VPBROADCASTQ round, Z22; \
	VPBROADCASTQ right, Z23; \
	MOVQ zp, BX; \
	VPBROADCASTD BX, Z24; \
	MOVQ lo, AX; \
	SUBQ BX, AX; \
	VPBROADCASTD AX, Z25; \
	MOVQ hi, AX; \
	SUBQ BX, AX; \
	VPBROADCASTD AX, Z26; \
	MOVL $0x80, AX; \
	VPBROADCASTD AX, Z31

// func addLUTAVX512(dst, a, b *int8, n int, ta, tb *int32, m0, round int64, right uint64, zp, lo, hi int64)
// The residual Add (lmAddFast): v = ta[a^0x80] + tb[b^0x80] (two VPGATHERDD, int32 wrap-around
// as in Go), then REQUANT16; 16 values per step, n a positive multiple of 16.
TEXT ·addLUTAVX512(SB), NOSPLIT, $0-96
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ ta+32(FP), R8
	MOVQ tb+40(FP), R9
	LOADREQ(m0+48(FP), round+56(FP), right+64(FP), zp+72(FP), lo+80(FP), hi+88(FP))
add_loop:
	VPMOVZXBD (SI), Z4
	VPXORD Z31, Z4, Z4
	VPMOVZXBD (DX), Z5
	VPXORD Z31, Z5, Z5
	KXNORW K1, K1, K1
	VPGATHERDD (R8)(Z4*4), K1, Z6
	KXNORW K2, K2, K2
	VPGATHERDD (R9)(Z5*4), K2, Z7
	VPADDD Z7, Z6, Z6
	REQUANT16
	ADDQ $16, SI
	ADDQ $16, DX
	ADDQ $16, DI
	SUBQ $16, CX
	JNZ  add_loop
	VZEROUPPER
	RET

// func swigluAVX512(dst, gate, up *int8, n int, silu *int32, zUp, m0, round int64, right uint64, zp, lo, hi int64)
// SwiGLU (swigluRowFast): v = silu[gate^0x80] * (up - zUp) (VPGATHERDD, VPMULLD: the int32
// product as in Go), then REQUANT16; 16 values per step, n a positive multiple of 16.
TEXT ·swigluAVX512(SB), NOSPLIT, $0-96
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ silu+32(FP), R8
	VPBROADCASTD zUp+40(FP), Z20
	LOADREQ(m0+48(FP), round+56(FP), right+64(FP), zp+72(FP), lo+80(FP), hi+88(FP))
sw_loop:
	VPMOVZXBD (SI), Z4
	VPXORD Z31, Z4, Z4
	KXNORW K1, K1, K1
	VPGATHERDD (R8)(Z4*4), K1, Z6
	VPMOVSXBD (DX), Z5
	VPSUBD Z20, Z5, Z5
	VPMULLD Z5, Z6, Z6
	REQUANT16
	ADDQ $16, SI
	ADDQ $16, DX
	ADDQ $16, DI
	SUBQ $16, CX
	JNZ  sw_loop
	VZEROUPPER
	RET

// func divRequantAVX512(dst *int8, src *int64, n int, d uint64, fd float64, m0, round int64, right uint64, zp int64)
// The output of one attention head (attentionRowFast): r = roundDiv(src[i]<<16, d) (half away
// from zero; |src<<16| + d/2 < 2^53, checked by the caller, so the float64 quotient is within
// one of the integer one and the remainder check makes it exact), then
// out = clamp(sat32((r*m0 + round) >> right) + zp, -128, 127); 8 values per step, n a positive
// multiple of 8.
TEXT ·divRequantAVX512(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ d+24(FP), AX
	VPBROADCASTQ AX, Z24      // d
	LEAQ -1(AX), BX
	VPBROADCASTQ BX, Z31      // d-1
	SHRQ $1, AX
	VPBROADCASTQ AX, Z22      // d/2
	VBROADCASTSD fd+32(FP), Z23
	VPBROADCASTQ m0+40(FP), Z20
	VPBROADCASTQ round+48(FP), Z21
	VPBROADCASTQ right+56(FP), Z18
	VPBROADCASTQ zp+64(FP), Z28
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
dr_loop:
	VMOVDQU64  (SI), Z0
	VPSLLQ     $16, Z0, Z0
	VPMOVQ2M   Z0, K1
	VPABSQ     Z0, Z1
	VPADDQ     Z22, Z1, Z1        // a
	VCVTQQ2PD  Z1, Z2
	VDIVPD     Z23, Z2, Z2
	VCVTTPD2QQ Z2, Z2
	VPMULLQ    Z24, Z2, Z3
	VPSUBQ     Z3, Z1, Z3         // rem
	VPMOVQ2M   Z3, K2
	VPSUBQ     Z27, Z2, K2, Z2
	VPCMPGTQ   Z31, Z3, K3
	VPADDQ     Z27, Z2, K3, Z2
	VPSUBQ     Z2, Z19, K1, Z2    // r
	VPMULDQ    Z20, Z2, Z2
	VPADDQ     Z21, Z2, Z2
	VPSRAVQ    Z18, Z2, Z2
	VPMINSQ    Z25, Z2, Z2
	VPMAXSQ    Z26, Z2, Z2
	VPADDQ     Z28, Z2, Z2
	VPMAXSQ    Z29, Z2, Z2
	VPMINSQ    Z30, Z2, Z2
	VPMOVQB    Z2, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	SUBQ $8, CX
	JNZ  dr_loop
	VZEROUPPER
	RET
