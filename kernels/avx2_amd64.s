//go:build !purego

#include "textflag.h"

// AVX-VNNI and AVX2 kernels on ymm registers, same panel layout and contract as the AVX-512
// kernels (u8 weights w+128 in tiles of 16 columns x 4 K values; signed activations; the caller
// passes roff[r] = -128*sum_k a[r][k] and off[j] = bias[j]).
//
// The Go assembler only knows the EVEX form of VPDPBUSD, so the VEX (AVX-VNNI) form is emitted
// with BYTE directives; each carries the instruction in Intel operand order. The encodings were
// checked with GNU objdump (see the test TestAVXVNNIEncoding).

// func avxvnni6x16(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
// 6 rows x 16 columns; accumulators Y0..Y11 (row r: Y2r cols 0-7, Y2r+1 cols 8-15).
TEXT ·avxvnni6x16(SB), NOSPLIT, $0-72
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), BX
	MOVQ w+16(FP), R9
	MOVQ kg+32(FP), R13
	MOVQ off+40(FP), DI
	MOVQ roff+48(FP), R14
	MOVQ c+56(FP), CX
	MOVQ ldc+64(FP), R12
	LEAQ (SI)(BX*2), DX
	ADDQ BX, DX           // DX = row 3
	VMOVDQU (DI), Y12
	VMOVDQU 32(DI), Y13
	VPBROADCASTD 0(R14), Y14
	VPADDD Y12, Y14, Y0
	VPADDD Y13, Y14, Y1
	VPBROADCASTD 4(R14), Y14
	VPADDD Y12, Y14, Y2
	VPADDD Y13, Y14, Y3
	VPBROADCASTD 8(R14), Y14
	VPADDD Y12, Y14, Y4
	VPADDD Y13, Y14, Y5
	VPBROADCASTD 12(R14), Y14
	VPADDD Y12, Y14, Y6
	VPADDD Y13, Y14, Y7
	VPBROADCASTD 16(R14), Y14
	VPADDD Y12, Y14, Y8
	VPADDD Y13, Y14, Y9
	VPBROADCASTD 20(R14), Y14
	VPADDD Y12, Y14, Y10
	VPADDD Y13, Y14, Y11
avxvnni6x16_loop:
	VMOVDQU (R9), Y12
	VMOVDQU 32(R9), Y13
	VPBROADCASTD (SI), Y14
	BYTE $0xc4; BYTE $0xc2; BYTE $0x1d; BYTE $0x50; BYTE $0xc6 // VPDPBUSD Y0, Y12, Y14 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0xc2; BYTE $0x15; BYTE $0x50; BYTE $0xce // VPDPBUSD Y1, Y13, Y14 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VPBROADCASTD (SI)(BX*1), Y15
	BYTE $0xc4; BYTE $0xc2; BYTE $0x1d; BYTE $0x50; BYTE $0xd7 // VPDPBUSD Y2, Y12, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0xc2; BYTE $0x15; BYTE $0x50; BYTE $0xdf // VPDPBUSD Y3, Y13, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VPBROADCASTD (SI)(BX*2), Y14
	BYTE $0xc4; BYTE $0xc2; BYTE $0x1d; BYTE $0x50; BYTE $0xe6 // VPDPBUSD Y4, Y12, Y14 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0xc2; BYTE $0x15; BYTE $0x50; BYTE $0xee // VPDPBUSD Y5, Y13, Y14 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VPBROADCASTD (DX), Y15
	BYTE $0xc4; BYTE $0xc2; BYTE $0x1d; BYTE $0x50; BYTE $0xf7 // VPDPBUSD Y6, Y12, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0xc2; BYTE $0x15; BYTE $0x50; BYTE $0xff // VPDPBUSD Y7, Y13, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VPBROADCASTD (SI)(BX*4), Y14
	BYTE $0xc4; BYTE $0x42; BYTE $0x1d; BYTE $0x50; BYTE $0xc6 // VPDPBUSD Y8, Y12, Y14 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0x42; BYTE $0x15; BYTE $0x50; BYTE $0xce // VPDPBUSD Y9, Y13, Y14 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VPBROADCASTD (DX)(BX*2), Y15
	BYTE $0xc4; BYTE $0x42; BYTE $0x1d; BYTE $0x50; BYTE $0xd7 // VPDPBUSD Y10, Y12, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0x42; BYTE $0x15; BYTE $0x50; BYTE $0xdf // VPDPBUSD Y11, Y13, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	ADDQ $4, SI
	ADDQ $4, DX
	ADDQ $64, R9
	DECQ R13
	JNZ avxvnni6x16_loop
	VMOVDQU Y0, (CX)
	VMOVDQU Y1, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y2, (CX)
	VMOVDQU Y3, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y4, (CX)
	VMOVDQU Y5, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y6, (CX)
	VMOVDQU Y7, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y8, (CX)
	VMOVDQU Y9, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y10, (CX)
	VMOVDQU Y11, 32(CX)
	VZEROUPPER
	RET

// func avxvnniGemv(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)
TEXT ·avxvnniGemv(SB), NOSPLIT, $0-56
	MOVQ a+0(FP), SI
	MOVQ kg+8(FP), R13
	MOVQ w+16(FP), R9
	MOVQ ts+24(FP), AX
	MOVQ nt+32(FP), R15
	MOVQ off+40(FP), DI
	MOVQ c+48(FP), CX
avxvnniGemv_tiles4:
	CMPQ R15, $4
	JLT avxvnniGemv_tiles1
	LEAQ (R9)(AX*2), DX
	ADDQ AX, DX           // DX = tile 3
	VMOVDQU 0(DI), Y0
	VMOVDQU 32(DI), Y1
	VMOVDQU 64(DI), Y2
	VMOVDQU 96(DI), Y3
	VMOVDQU 128(DI), Y4
	VMOVDQU 160(DI), Y5
	VMOVDQU 192(DI), Y6
	VMOVDQU 224(DI), Y7
	MOVQ SI, R10
	MOVQ R13, R11
avxvnniGemv_loop4:
	VPBROADCASTD (R10), Y15
	VMOVDQU 0(R9), Y8
	BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xc7 // VPDPBUSD Y0, Y8, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 32(R9), Y9
	BYTE $0xc4; BYTE $0xc2; BYTE $0x35; BYTE $0x50; BYTE $0xcf // VPDPBUSD Y1, Y9, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 0(R9)(AX*1), Y10
	BYTE $0xc4; BYTE $0xc2; BYTE $0x2d; BYTE $0x50; BYTE $0xd7 // VPDPBUSD Y2, Y10, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 32(R9)(AX*1), Y11
	BYTE $0xc4; BYTE $0xc2; BYTE $0x25; BYTE $0x50; BYTE $0xdf // VPDPBUSD Y3, Y11, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 0(R9)(AX*2), Y12
	BYTE $0xc4; BYTE $0xc2; BYTE $0x1d; BYTE $0x50; BYTE $0xe7 // VPDPBUSD Y4, Y12, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 32(R9)(AX*2), Y13
	BYTE $0xc4; BYTE $0xc2; BYTE $0x15; BYTE $0x50; BYTE $0xef // VPDPBUSD Y5, Y13, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 0(DX), Y8
	BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xf7 // VPDPBUSD Y6, Y8, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	VMOVDQU 32(DX), Y9
	BYTE $0xc4; BYTE $0xc2; BYTE $0x35; BYTE $0x50; BYTE $0xff // VPDPBUSD Y7, Y9, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	ADDQ $4, R10
	ADDQ $64, R9
	ADDQ $64, DX
	DECQ R11
	JNZ avxvnniGemv_loop4
	VMOVDQU Y0, 0(CX)
	VMOVDQU Y1, 32(CX)
	VMOVDQU Y2, 64(CX)
	VMOVDQU Y3, 96(CX)
	VMOVDQU Y4, 128(CX)
	VMOVDQU Y5, 160(CX)
	VMOVDQU Y6, 192(CX)
	VMOVDQU Y7, 224(CX)
	LEAQ (R9)(AX*2), R9
	ADDQ AX, R9           // R9 advanced by ts in the loop: now tile 4
	ADDQ $256, DI
	ADDQ $256, CX
	SUBQ $4, R15
	JMP avxvnniGemv_tiles4
avxvnniGemv_tiles1:
	TESTQ R15, R15
	JZ avxvnniGemv_done
	VMOVDQU (DI), Y0
	VMOVDQU 32(DI), Y1
	MOVQ SI, R10
	MOVQ R13, R11
avxvnniGemv_loop1:
	VPBROADCASTD (R10), Y15
	VMOVDQU (R9), Y8
	VMOVDQU 32(R9), Y9
	BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xc7 // VPDPBUSD Y0, Y8, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	BYTE $0xc4; BYTE $0xc2; BYTE $0x35; BYTE $0x50; BYTE $0xcf // VPDPBUSD Y1, Y9, Y15 (Intel order; AVX-VNNI, VEX.256.66.0F38.W0 50 /r)
	ADDQ $4, R10
	ADDQ $64, R9
	DECQ R11
	JNZ avxvnniGemv_loop1
	VMOVDQU Y0, (CX)
	VMOVDQU Y1, 32(CX)
	ADDQ $64, DI
	ADDQ $64, CX
	DECQ R15
	JMP avxvnniGemv_tiles1
avxvnniGemv_done:
	VZEROUPPER
	RET

// Twins of the two AVX-VNNI kernels above with the EVEX encoding of VPDPBUSD on ymm (AVX512VL +
// AVX512_VNNI): identical instruction stream otherwise. Used only by tests, so that the kernel
// logic is exercised on CPUs with AVX-512 VNNI but without AVX-VNNI (like the development machine).
// func avxvnni6x16Evex(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
// 6 rows x 16 columns; accumulators Y0..Y11 (row r: Y2r cols 0-7, Y2r+1 cols 8-15).
TEXT ·avxvnni6x16Evex(SB), NOSPLIT, $0-72
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), BX
	MOVQ w+16(FP), R9
	MOVQ kg+32(FP), R13
	MOVQ off+40(FP), DI
	MOVQ roff+48(FP), R14
	MOVQ c+56(FP), CX
	MOVQ ldc+64(FP), R12
	LEAQ (SI)(BX*2), DX
	ADDQ BX, DX           // DX = row 3
	VMOVDQU (DI), Y12
	VMOVDQU 32(DI), Y13
	VPBROADCASTD 0(R14), Y14
	VPADDD Y12, Y14, Y0
	VPADDD Y13, Y14, Y1
	VPBROADCASTD 4(R14), Y14
	VPADDD Y12, Y14, Y2
	VPADDD Y13, Y14, Y3
	VPBROADCASTD 8(R14), Y14
	VPADDD Y12, Y14, Y4
	VPADDD Y13, Y14, Y5
	VPBROADCASTD 12(R14), Y14
	VPADDD Y12, Y14, Y6
	VPADDD Y13, Y14, Y7
	VPBROADCASTD 16(R14), Y14
	VPADDD Y12, Y14, Y8
	VPADDD Y13, Y14, Y9
	VPBROADCASTD 20(R14), Y14
	VPADDD Y12, Y14, Y10
	VPADDD Y13, Y14, Y11
avxvnni6x16Evex_loop:
	VMOVDQU (R9), Y12
	VMOVDQU 32(R9), Y13
	VPBROADCASTD (SI), Y14
	VPDPBUSD Y14, Y12, Y0 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y14, Y13, Y1 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPBROADCASTD (SI)(BX*1), Y15
	VPDPBUSD Y15, Y12, Y2 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y15, Y13, Y3 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPBROADCASTD (SI)(BX*2), Y14
	VPDPBUSD Y14, Y12, Y4 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y14, Y13, Y5 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPBROADCASTD (DX), Y15
	VPDPBUSD Y15, Y12, Y6 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y15, Y13, Y7 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPBROADCASTD (SI)(BX*4), Y14
	VPDPBUSD Y14, Y12, Y8 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y14, Y13, Y9 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPBROADCASTD (DX)(BX*2), Y15
	VPDPBUSD Y15, Y12, Y10 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y15, Y13, Y11 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	ADDQ $4, SI
	ADDQ $4, DX
	ADDQ $64, R9
	DECQ R13
	JNZ avxvnni6x16Evex_loop
	VMOVDQU Y0, (CX)
	VMOVDQU Y1, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y2, (CX)
	VMOVDQU Y3, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y4, (CX)
	VMOVDQU Y5, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y6, (CX)
	VMOVDQU Y7, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y8, (CX)
	VMOVDQU Y9, 32(CX)
	ADDQ R12, CX
	VMOVDQU Y10, (CX)
	VMOVDQU Y11, 32(CX)
	VZEROUPPER
	RET

// func avxvnniGemvEvex(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)
TEXT ·avxvnniGemvEvex(SB), NOSPLIT, $0-56
	MOVQ a+0(FP), SI
	MOVQ kg+8(FP), R13
	MOVQ w+16(FP), R9
	MOVQ ts+24(FP), AX
	MOVQ nt+32(FP), R15
	MOVQ off+40(FP), DI
	MOVQ c+48(FP), CX
avxvnniGemvEvex_tiles4:
	CMPQ R15, $4
	JLT avxvnniGemvEvex_tiles1
	LEAQ (R9)(AX*2), DX
	ADDQ AX, DX           // DX = tile 3
	VMOVDQU 0(DI), Y0
	VMOVDQU 32(DI), Y1
	VMOVDQU 64(DI), Y2
	VMOVDQU 96(DI), Y3
	VMOVDQU 128(DI), Y4
	VMOVDQU 160(DI), Y5
	VMOVDQU 192(DI), Y6
	VMOVDQU 224(DI), Y7
	MOVQ SI, R10
	MOVQ R13, R11
avxvnniGemvEvex_loop4:
	VPBROADCASTD (R10), Y15
	VMOVDQU 0(R9), Y8
	VPDPBUSD Y15, Y8, Y0 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 32(R9), Y9
	VPDPBUSD Y15, Y9, Y1 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 0(R9)(AX*1), Y10
	VPDPBUSD Y15, Y10, Y2 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 32(R9)(AX*1), Y11
	VPDPBUSD Y15, Y11, Y3 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 0(R9)(AX*2), Y12
	VPDPBUSD Y15, Y12, Y4 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 32(R9)(AX*2), Y13
	VPDPBUSD Y15, Y13, Y5 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 0(DX), Y8
	VPDPBUSD Y15, Y8, Y6 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VMOVDQU 32(DX), Y9
	VPDPBUSD Y15, Y9, Y7 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	ADDQ $4, R10
	ADDQ $64, R9
	ADDQ $64, DX
	DECQ R11
	JNZ avxvnniGemvEvex_loop4
	VMOVDQU Y0, 0(CX)
	VMOVDQU Y1, 32(CX)
	VMOVDQU Y2, 64(CX)
	VMOVDQU Y3, 96(CX)
	VMOVDQU Y4, 128(CX)
	VMOVDQU Y5, 160(CX)
	VMOVDQU Y6, 192(CX)
	VMOVDQU Y7, 224(CX)
	LEAQ (R9)(AX*2), R9
	ADDQ AX, R9           // R9 advanced by ts in the loop: now tile 4
	ADDQ $256, DI
	ADDQ $256, CX
	SUBQ $4, R15
	JMP avxvnniGemvEvex_tiles4
avxvnniGemvEvex_tiles1:
	TESTQ R15, R15
	JZ avxvnniGemvEvex_done
	VMOVDQU (DI), Y0
	VMOVDQU 32(DI), Y1
	MOVQ SI, R10
	MOVQ R13, R11
avxvnniGemvEvex_loop1:
	VPBROADCASTD (R10), Y15
	VMOVDQU (R9), Y8
	VMOVDQU 32(R9), Y9
	VPDPBUSD Y15, Y8, Y0 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	VPDPBUSD Y15, Y9, Y1 // EVEX (AVX512VL) twin, tests the kernel logic on AVX-512 CPUs
	ADDQ $4, R10
	ADDQ $64, R9
	DECQ R11
	JNZ avxvnniGemvEvex_loop1
	VMOVDQU Y0, (CX)
	VMOVDQU Y1, 32(CX)
	ADDQ $64, DI
	ADDQ $64, CX
	DECQ R15
	JMP avxvnniGemvEvex_tiles1
avxvnniGemvEvex_done:
	VZEROUPPER
	RET

// func avx2x4x16(a *int16, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
// 4 rows x 16 columns in two passes of 8 columns. The activations arrive sign-extended to
// int16 (sext16AVX2; lda in bytes), so each K group of a row is one 8-byte broadcast. Products
// are exact: weights (u8 w+128, zero-extended by VPMOVZXBW) times int16 activations with
// VPMADDWD; a pair sum is at most 2*255*128 < 2^31, nothing saturates (VPMADDUBSW would:
// 2*255*127 > 2^15). Accumulator lanes hold (k0+k1, k2+k3) per column; VPHADDD + VPERMQ finish.
TEXT ·avx2x4x16(SB), NOSPLIT, $0-72
	MOVQ lda+8(FP), BX
	MOVQ off+40(FP), DI
	MOVQ roff+48(FP), R14
	MOVQ c+56(FP), CX
	MOVQ ldc+64(FP), R12
	XORQ R15, R15        // pass: byte offset of the column half, 0 or 32
avx2x4x16_pass:
	MOVQ a+0(FP), SI
	LEAQ (SI)(BX*2), DX
	ADDQ BX, DX
	MOVQ w+16(FP), R9
	LEAQ (R9)(R15*1), R9
	MOVQ kg+32(FP), R13
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
avx2x4x16_loop:
	VPMOVZXBW (R9), Y8
	VPMOVZXBW 16(R9), Y9
	VPBROADCASTQ (SI), Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y0, Y0
	VPMADDWD Y9, Y10, Y12
	VPADDD Y12, Y1, Y1
	VPBROADCASTQ (SI)(BX*1), Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y2, Y2
	VPMADDWD Y9, Y10, Y12
	VPADDD Y12, Y3, Y3
	VPBROADCASTQ (SI)(BX*2), Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y4, Y4
	VPMADDWD Y9, Y10, Y12
	VPADDD Y12, Y5, Y5
	VPBROADCASTQ (DX), Y10
	VPMADDWD Y8, Y10, Y11
	VPADDD Y11, Y6, Y6
	VPMADDWD Y9, Y10, Y12
	VPADDD Y12, Y7, Y7
	ADDQ $8, SI
	ADDQ $8, DX
	ADDQ $64, R9
	DECQ R13
	JNZ avx2x4x16_loop
	MOVQ CX, R8
	VMOVDQU (DI)(R15*1), Y14
	VPHADDD Y1, Y0, Y13
	VPERMQ $0xd8, Y13, Y13
	VPBROADCASTD 0(R14), Y15
	VPADDD Y14, Y15, Y15
	VPADDD Y15, Y13, Y13
	VMOVDQU Y13, (R8)(R15*1)
	ADDQ R12, R8
	VPHADDD Y3, Y2, Y13
	VPERMQ $0xd8, Y13, Y13
	VPBROADCASTD 4(R14), Y15
	VPADDD Y14, Y15, Y15
	VPADDD Y15, Y13, Y13
	VMOVDQU Y13, (R8)(R15*1)
	ADDQ R12, R8
	VPHADDD Y5, Y4, Y13
	VPERMQ $0xd8, Y13, Y13
	VPBROADCASTD 8(R14), Y15
	VPADDD Y14, Y15, Y15
	VPADDD Y15, Y13, Y13
	VMOVDQU Y13, (R8)(R15*1)
	ADDQ R12, R8
	VPHADDD Y7, Y6, Y13
	VPERMQ $0xd8, Y13, Y13
	VPBROADCASTD 12(R14), Y15
	VPADDD Y14, Y15, Y15
	VPADDD Y15, Y13, Y13
	VMOVDQU Y13, (R8)(R15*1)
	ADDQ $32, R15
	CMPQ R15, $64
	JLT avx2x4x16_pass
	VZEROUPPER
	RET

// func sext16AVX2(dst *int16, src *int8, n int)
// dst[i] = int16(src[i]) for n values, n a positive multiple of 16.
TEXT ·sext16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
sext16_loop:
	VPMOVSXBW (SI), Y0
	VMOVDQU Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JNZ sext16_loop
	VZEROUPPER
	RET

// func avx2Gemv(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)
TEXT ·avx2Gemv(SB), NOSPLIT, $0-56
	MOVQ kg+8(FP), R13
	MOVQ w+16(FP), R9
	MOVQ nt+32(FP), R15
	MOVQ off+40(FP), DI
	MOVQ c+48(FP), CX
avx2Gemv_tile:
	MOVQ a+0(FP), SI
	MOVQ R13, R11
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
avx2Gemv_loop:
	VPBROADCASTD (SI), X10
	VPMOVSXBW X10, Y10
	VPMOVZXBW (R9), Y4
	VPMOVZXBW 16(R9), Y5
	VPMOVZXBW 32(R9), Y6
	VPMOVZXBW 48(R9), Y7
	VPMADDWD Y4, Y10, Y4
	VPMADDWD Y5, Y10, Y5
	VPMADDWD Y6, Y10, Y6
	VPMADDWD Y7, Y10, Y7
	VPADDD Y4, Y0, Y0
	VPADDD Y5, Y1, Y1
	VPADDD Y6, Y2, Y2
	VPADDD Y7, Y3, Y3
	ADDQ $4, SI
	ADDQ $64, R9
	DECQ R11
	JNZ avx2Gemv_loop
	VPHADDD Y1, Y0, Y0
	VPERMQ $0xd8, Y0, Y0
	VPHADDD Y3, Y2, Y2
	VPERMQ $0xd8, Y2, Y2
	VPADDD (DI), Y0, Y0
	VPADDD 32(DI), Y2, Y2
	VMOVDQU Y0, (CX)
	VMOVDQU Y2, 32(CX)
	ADDQ $64, DI
	ADDQ $64, CX
	DECQ R15
	JNZ avx2Gemv_tile
	VZEROUPPER
	RET

// func sumInt8AVX2(p *int8, n int) int32
// Sum of n signed bytes (n a positive multiple of 64): VPSADBW of x^0x80 gives sums of
// x+128; subtract 128*n at the end.
TEXT ·sumInt8AVX2(SB), NOSPLIT, $0-20
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ CX, R8
	MOVL $0x80808080, AX
	MOVD AX, X3
	VPBROADCASTD X3, Y3
	VPXOR Y0, Y0, Y0
	VPXOR Y4, Y4, Y4
sum2_loop:
	VPXOR (SI), Y3, Y1
	VPSADBW Y4, Y1, Y1
	VPADDQ Y1, Y0, Y0
	VPXOR 32(SI), Y3, Y2
	VPSADBW Y4, Y2, Y2
	VPADDQ Y2, Y0, Y0
	ADDQ $64, SI
	SUBQ $64, CX
	JNZ sum2_loop
	VEXTRACTI128 $1, Y0, X1
	VPADDQ X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDQ X1, X0, X0
	MOVQ X0, AX
	SHLQ $7, R8
	SUBQ R8, AX
	MOVL AX, ret+16(FP)
	VZEROUPPER
	RET

// func requantAVX2(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64)
// quant.Requantize on rows x n values (n a positive multiple of 4; strides in elements), 4 per
// ymm in 64-bit lanes. AVX2 has no 64-bit arithmetic shift: x >> t is computed as
// ((x ^ 2^63) >>> t) - (2^63 >>> t). Saturation to int32 and the clamp use VPCMPGTQ/VPBLENDVB.
// Channel chunks of 4 outer (per-channel constants computed once), rows inner.
TEXT ·requantAVX2(SB), NOSPLIT, $0-88
	MOVQ $0x8000000000000000, AX
	MOVQ AX, X7
	VPBROADCASTQ X7, Y7
	MOVQ $0x7fffffff, AX
	MOVQ AX, X8
	VPBROADCASTQ X8, Y8
	MOVQ $-0x80000000, AX
	MOVQ AX, X9
	VPBROADCASTQ X9, Y9
	MOVQ zp+64(FP), AX
	MOVQ AX, X10
	VPBROADCASTQ X10, Y10
	MOVQ lo+72(FP), AX
	MOVQ AX, X11
	VPBROADCASTQ X11, Y11
	MOVQ hi+80(FP), AX
	MOVQ AX, X12
	VPBROADCASTQ X12, Y12
	MOVQ $0x8080808080800800, AX // VPSHUFB mask: bytes 0 and 8 of each lane to bytes 0, 1
	MOVQ AX, X13
	MOVQ $0x8080808080808080, AX
	VPINSRQ $1, AX, X13, X13
	VINSERTI128 $1, X13, Y13, Y13
	MOVQ $1, AX
	MOVQ AX, X14
	VPBROADCASTQ X14, Y14
	MOVQ $31, AX
	MOVQ AX, X15
	VPBROADCASTQ X15, Y15
	MOVQ dst+0(FP), R10
	MOVQ src+16(FP), R11
	MOVQ m0+40(FP), R8
	MOVQ sh+48(FP), R9
	MOVQ n+56(FP), CX
requant2_chunk:
	VPMOVSXDQ (R8), Y1      // m0
	VPMOVSXDQ (R9), Y2
	VPSUBQ Y2, Y15, Y2      // total = 31 - shift
	VPSUBQ Y14, Y2, Y3
	VPSLLVQ Y3, Y14, Y3     // round = 1 << (total-1)
	VPSRLVQ Y2, Y7, Y4      // 2^63 >>> total
	MOVQ R10, DI
	MOVQ R11, SI
	MOVQ rows+32(FP), R12
requant2_loop:
	VPMOVSXDQ (SI), Y0
	VPMULDQ Y1, Y0, Y0
	VPADDQ Y3, Y0, Y0
	VPXOR Y7, Y0, Y0
	VPSRLVQ Y2, Y0, Y0
	VPSUBQ Y4, Y0, Y0       // (acc*m0 + round) >> total, arithmetic
	VPCMPGTQ Y8, Y0, Y5
	VPBLENDVB Y5, Y8, Y0, Y0
	VPCMPGTQ Y0, Y9, Y5
	VPBLENDVB Y5, Y9, Y0, Y0 // saturated to int32
	VPADDQ Y10, Y0, Y0
	VPCMPGTQ Y0, Y11, Y5
	VPBLENDVB Y5, Y11, Y0, Y0
	VPCMPGTQ Y12, Y0, Y5
	VPBLENDVB Y5, Y12, Y0, Y0
	VPSHUFB Y13, Y0, Y0
	VEXTRACTI128 $1, Y0, X6
	VPUNPCKLWD X6, X0, X0
	MOVQ X0, AX
	MOVL AX, (DI)
	ADDQ ldd+8(FP), DI
	MOVQ lds+24(FP), AX
	LEAQ (SI)(AX*4), SI
	DECQ R12
	JNZ requant2_loop
	ADDQ $4, R10
	ADDQ $16, R11
	ADDQ $16, R8
	ADDQ $16, R9
	SUBQ $4, CX
	JNZ requant2_chunk
	VZEROUPPER
	RET


// func avx2Gemv4(a *int8, nb, groups int, w *byte, ts, nt int, sc, gcorr, off, c *int32)
// W4A8 GEMV with AVX2 on the int4 panel (int4.go). The unpacked nibbles are u8 1..15 (w+8), so
// VPMADDUBSW against signed activations is exact: a pair is at most 2*15*128 = 3840 < 2^15;
// the low- and high-nibble products of one block are added in int16 (<= 7680), then VPMADDWD
// with ones widens to one int32 per column. Per group: acc - gcorr[g], times the scales
// (VPMULLD), into the totals. One tile (two ymm of 8 columns) at a time.
TEXT ·avx2Gemv4(SB), NOSPLIT, $0-80
	MOVQ a+0(FP), SI
	MOVQ nb+8(FP), R13
	MOVQ w+24(FP), R9
	MOVQ nt+40(FP), R15
	MOVQ sc+48(FP), R14
	MOVQ off+64(FP), DI
	MOVQ c+72(FP), CX
	MOVL $0x0f0f0f0f, AX
	MOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x00010001, AX
	MOVD AX, X14
	VPBROADCASTD X14, Y14
avx2g4_tile:
	TESTQ R15, R15
	JZ avx2g4_done
	VMOVDQU (DI), Y2
	VMOVDQU 32(DI), Y3
	MOVQ SI, R10
	MOVQ gcorr+56(FP), R8
	MOVQ groups+16(FP), R12
avx2g4_group:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	MOVQ R13, R11
avx2g4_block:
	VPBROADCASTD (R10), Y12
	VPBROADCASTD 4(R10), Y13
	VMOVDQU (R9), Y4
	VPSRLW $4, Y4, Y5
	VPAND Y15, Y4, Y4
	VPAND Y15, Y5, Y5
	VPMADDUBSW Y12, Y4, Y4
	VPMADDUBSW Y13, Y5, Y5
	VPADDW Y5, Y4, Y4
	VPMADDWD Y14, Y4, Y4
	VPADDD Y4, Y0, Y0
	VMOVDQU 32(R9), Y6
	VPSRLW $4, Y6, Y7
	VPAND Y15, Y6, Y6
	VPAND Y15, Y7, Y7
	VPMADDUBSW Y12, Y6, Y6
	VPMADDUBSW Y13, Y7, Y7
	VPADDW Y7, Y6, Y6
	VPMADDWD Y14, Y6, Y6
	VPADDD Y6, Y1, Y1
	ADDQ $8, R10
	ADDQ $64, R9
	DECQ R11
	JNZ avx2g4_block
	VPBROADCASTD (R8), Y8
	VPSUBD Y8, Y0, Y0
	VPSUBD Y8, Y1, Y1
	VPMULLD (R14), Y0, Y0
	VPMULLD 32(R14), Y1, Y1
	VPADDD Y0, Y2, Y2
	VPADDD Y1, Y3, Y3
	ADDQ $4, R8
	ADDQ $64, R14
	DECQ R12
	JNZ avx2g4_group
	VMOVDQU Y2, (CX)
	VMOVDQU Y3, 32(CX)
	ADDQ $64, DI
	ADDQ $64, CX
	DECQ R15
	JMP avx2g4_tile
avx2g4_done:
	VZEROUPPER
	RET

