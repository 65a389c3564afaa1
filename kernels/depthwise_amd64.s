//go:build !purego

#include "textflag.h"

// Depthwise convolution with the channels in the vector lanes (AVX-512 VNNI), see
// depthwise_amd64.go. The image is first widened to pairs of horizontally adjacent pixels
// (dwPairsAVX512), so that one VPDPWSSD multiplies two kernel taps of 16 channels and adds both
// products to 16 int32 accumulators: exact (int16 x int16 products, int32 sums, no saturation).

// func dwPairsAVX512(q *int16, p *int8, n, cs int, idx *int16)
// For each of the n blocks of 16 bytes at p+16i: q[32i+2j] = p[16i+j], q[32i+2j+1] = p[16i+cs+j]
// (sign-extended), j < 16: a pixel's channels interleaved with the next pixel's.
TEXT ·dwPairsAVX512(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ cs+24(FP), DX
	MOVQ idx+32(FP), AX
	VMOVDQU16 (AX), Z31
	TESTQ CX, CX
	JZ pairs_done
pairs_loop:
	VPMOVSXBW (SI), Y0
	VPMOVSXBW (SI)(DX*1), Y1
	VPERMT2W Z1, Z31, Z0
	VMOVDQU16 Z0, (DI)
	ADDQ $16, SI
	ADDQ $64, DI
	DECQ CX
	JNZ pairs_loop
pairs_done:
	VZEROUPPER
	RET

// EPI requantizes the 16 int32 lanes of Z (channels of one block, constants at CX, see dwEpilogue)
// and stores them as 16 int8 at DST; T is a temporary. Even lanes are multiplied in the low
// dwords of Z's qwords, odd lanes after a 32-bit right shift; both are clamped in int64 to
// [lo-zp, hi-zp] (Z28, Z29), merged (K1 = odd dwords), offset by zp (Z30) and narrowed.
#define EPI(Z, T, DST) \
	VPSRLQ $32, Z, T; \
	VPMULDQ (CX), Z, Z; \
	VPMULDQ 64(CX), T, T; \
	VPADDQ 128(CX), Z, Z; \
	VPADDQ 192(CX), T, T; \
	VPSRAVQ 256(CX), Z, Z; \
	VPSRAVQ 320(CX), T, T; \
	VPMAXSQ Z28, Z, Z; \
	VPMINSQ Z29, Z, Z; \
	VPMAXSQ Z28, T, T; \
	VPMINSQ Z29, T, T; \
	VPSLLQ $32, T, T; \
	VMOVDQA32 T, K1, Z; \
	VPADDD Z30, Z, Z; \
	VPMOVDB Z, DST

// func dwRowVNNI(dst *int8, q *int16, w *int32, bias *int32, ep *int64, cs, kh, npw, rowStride, pixStride, ow int, loZ, hiZ, zp int64)
// One output row: for each of the ow pixels (q advancing by pixStride bytes) and each block of 16
// of the cs channels (cs a positive multiple of 16), the int32 sum bias[ch] + over kh rows (q
// advancing by rowStride bytes) and npw tap pairs (q advancing by 2 pixels, w by cs int32) of the
// VPDPWSSD of the pair words of q and w, then requantized (EPI, 384 bytes of ep per block) into
// dst[ox*cs+ch]. Four pixels at a time (four independent chains), then one at a time.
TEXT ·dwRowVNNI(SB), NOSPLIT, $0-112
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ cs+40(FP), R10
	SHLQ $2, R10              // bytes per tap pair of w and per position of q
	MOVQ rowStride+64(FP), R15
	MOVQ pixStride+72(FP), R8
	LEAQ (R8)(R8*2), R9
	MOVQ ow+80(FP), R13
	VPBROADCASTQ loZ+88(FP), Z28
	VPBROADCASTQ hiZ+96(FP), Z29
	VPBROADCASTD zp+104(FP), Z30
	MOVQ $0xAAAA, AX
	KMOVW AX, K1
quad:
	CMPQ R13, $4
	JLT single
	XORQ R11, R11             // block offset in bytes of int32
quad_blk:
	MOVQ bias+24(FP), AX
	VMOVDQU32 (AX)(R11*1), Z0
	VMOVDQA32 Z0, Z1
	VMOVDQA32 Z0, Z2
	VMOVDQA32 Z0, Z3
	MOVQ w+16(FP), DX
	ADDQ R11, DX
	LEAQ (SI)(R11*1), BX
	MOVQ kh+48(FP), R12
quad_row:
	MOVQ BX, AX
	MOVQ npw+56(FP), R14
quad_pair:
	VMOVDQU32 (DX), Z4
	VPDPWSSD (AX), Z4, Z0
	VPDPWSSD (AX)(R8*1), Z4, Z1
	VPDPWSSD (AX)(R8*2), Z4, Z2
	VPDPWSSD (AX)(R9*1), Z4, Z3
	ADDQ R10, DX
	LEAQ (AX)(R10*2), AX
	DECQ R14
	JNZ quad_pair
	ADDQ R15, BX
	DECQ R12
	JNZ quad_row
	LEAQ (R11)(R11*2), CX
	SHLQ $1, CX
	ADDQ ep+32(FP), CX
	MOVQ R11, AX
	SHRQ $2, AX
	ADDQ DI, AX
	MOVQ cs+40(FP), DX
	LEAQ (AX)(DX*2), BX
	EPI(Z0, Z5, (AX))
	EPI(Z1, Z6, (AX)(DX*1))
	EPI(Z2, Z7, (BX))
	EPI(Z3, Z8, (BX)(DX*1))
	ADDQ $64, R11
	CMPQ R11, R10
	JLT quad_blk
	LEAQ (SI)(R8*4), SI
	ADDQ R10, DI
	SUBQ $4, R13
	JMP quad
single:
	TESTQ R13, R13
	JZ row_done
	XORQ R11, R11
single_blk:
	MOVQ bias+24(FP), AX
	VMOVDQU32 (AX)(R11*1), Z0
	MOVQ w+16(FP), DX
	ADDQ R11, DX
	LEAQ (SI)(R11*1), BX
	MOVQ kh+48(FP), R12
single_row:
	MOVQ BX, AX
	MOVQ npw+56(FP), R14
single_pair:
	VMOVDQU32 (DX), Z4
	VPDPWSSD (AX), Z4, Z0
	ADDQ R10, DX
	LEAQ (AX)(R10*2), AX
	DECQ R14
	JNZ single_pair
	ADDQ R15, BX
	DECQ R12
	JNZ single_row
	LEAQ (R11)(R11*2), CX
	SHLQ $1, CX
	ADDQ ep+32(FP), CX
	MOVQ R11, AX
	SHRQ $2, AX
	ADDQ DI, AX
	EPI(Z0, Z5, (AX))
	ADDQ $64, R11
	CMPQ R11, R10
	JLT single_blk
	ADDQ R8, SI
	MOVQ cs+40(FP), AX
	ADDQ AX, DI
	DECQ R13
	JMP single
row_done:
	VZEROUPPER
	RET
