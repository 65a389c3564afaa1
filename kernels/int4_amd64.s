//go:build !purego

#include "textflag.h"

// W4A8 GEMV with AVX-512 VNNI. Panel (int4.go, packPanel): per tile of 16 rows and block of 8 K
// values, 64 bytes; byte c*4+b holds w[c][8q+b]+8 (low nibble) and w[c][8q+4+b]+8 (high
// nibble). The nibbles are unpacked in registers (VPANDD / VPSRLW) into u8 operands 1..15 for
// VPDPBUSD against broadcast signed activations, so each group sum is
// sum (w+8)*a = sum w*a + 8*sum a; the caller passes gcorr[g] = 8*sum_{k in g} a[k]. Then
// tot += (acc - gcorr[g]) * scale[tile][g] with VPMULLD (exact: PackInt4 bounds the sum).
//
// func vnniGemv4(a *int8, nb int, groups int, w *byte, ts int, nt int, sc *int32, gcorr *int32, off *int32, c *int32)
// nb = blocks of 8 per group, ts = bytes per tile, sc = scales [tile][group][16].
TEXT ·vnniGemv4(SB), NOSPLIT, $0-80
	MOVQ a+0(FP), SI
	MOVQ nb+8(FP), R13
	MOVQ groups+16(FP), BX
	SHLQ $6, BX            // scale stride between tiles: groups*64 bytes
	MOVQ w+24(FP), R9
	MOVQ ts+32(FP), AX
	MOVQ sc+48(FP), R14
	MOVQ off+64(FP), DI
	MOVQ c+72(FP), CX
	MOVL $0x0f0f0f0f, R10
	VPBROADCASTD R10, Z31
g4_tiles4:
	CMPQ nt+40(FP), $4
	JLT g4_tiles1
	LEAQ (R9)(AX*2), DX
	ADDQ AX, DX            // DX = tile 3 weights
	VMOVDQU32 0(DI), Z4
	VMOVDQU32 64(DI), Z5
	VMOVDQU32 128(DI), Z6
	VMOVDQU32 192(DI), Z7
	MOVQ SI, R10
	MOVQ gcorr+56(FP), R8
	MOVQ groups+16(FP), R12
	MOVQ R14, R15
g4_group4:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ R13, R11
g4_block4:
	VMOVDQU32 (R9), Z8
	VPSRLW $4, Z8, Z12
	VPANDD Z31, Z8, Z8
	VPANDD Z31, Z12, Z12
	VMOVDQU32 (R9)(AX*1), Z9
	VPSRLW $4, Z9, Z13
	VPANDD Z31, Z9, Z9
	VPANDD Z31, Z13, Z13
	VMOVDQU32 (R9)(AX*2), Z10
	VPSRLW $4, Z10, Z14
	VPANDD Z31, Z10, Z10
	VPANDD Z31, Z14, Z14
	VMOVDQU32 (DX), Z11
	VPSRLW $4, Z11, Z15
	VPANDD Z31, Z11, Z11
	VPANDD Z31, Z15, Z15
	VPDPBUSD.BCST (R10), Z8, Z0
	VPDPBUSD.BCST (R10), Z9, Z1
	VPDPBUSD.BCST (R10), Z10, Z2
	VPDPBUSD.BCST (R10), Z11, Z3
	VPDPBUSD.BCST 4(R10), Z12, Z0
	VPDPBUSD.BCST 4(R10), Z13, Z1
	VPDPBUSD.BCST 4(R10), Z14, Z2
	VPDPBUSD.BCST 4(R10), Z15, Z3
	ADDQ $8, R10
	ADDQ $64, R9
	ADDQ $64, DX
	DECQ R11
	JNZ g4_block4
	VPBROADCASTD (R8), Z16
	VPSUBD Z16, Z0, Z0
	VPSUBD Z16, Z1, Z1
	VPSUBD Z16, Z2, Z2
	VPSUBD Z16, Z3, Z3
	VPMULLD (R15), Z0, Z0
	VPMULLD (R15)(BX*1), Z1, Z1
	VPMULLD (R15)(BX*2), Z2, Z2
	ADDQ BX, R15
	VPMULLD (R15)(BX*2), Z3, Z3
	SUBQ BX, R15
	VPADDD Z0, Z4, Z4
	VPADDD Z1, Z5, Z5
	VPADDD Z2, Z6, Z6
	VPADDD Z3, Z7, Z7
	ADDQ $4, R8
	ADDQ $64, R15
	DECQ R12
	JNZ g4_group4
	VMOVDQU32 Z4, 0(CX)
	VMOVDQU32 Z5, 64(CX)
	VMOVDQU32 Z6, 128(CX)
	VMOVDQU32 Z7, 192(CX)
	// R9 advanced by one tile: skip 3 more. Scales: 4 tiles.
	LEAQ (R9)(AX*2), R9
	ADDQ AX, R9
	LEAQ (R14)(BX*4), R14
	ADDQ $256, DI
	ADDQ $256, CX
	SUBQ $4, nt+40(FP)
	JMP g4_tiles4
g4_tiles1:
	CMPQ nt+40(FP), $0
	JE g4_done
	VMOVDQU32 (DI), Z4
	MOVQ SI, R10
	MOVQ gcorr+56(FP), R8
	MOVQ groups+16(FP), R12
	MOVQ R14, R15
g4_group1:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ R13, R11
g4_block1:
	VMOVDQU32 (R9), Z8
	VPSRLW $4, Z8, Z12
	VPANDD Z31, Z8, Z8
	VPANDD Z31, Z12, Z12
	VPDPBUSD.BCST (R10), Z8, Z0
	VPDPBUSD.BCST 4(R10), Z12, Z1
	ADDQ $8, R10
	ADDQ $64, R9
	DECQ R11
	JNZ g4_block1
	VPADDD Z1, Z0, Z0
	VPBROADCASTD (R8), Z16
	VPSUBD Z16, Z0, Z0
	VPMULLD (R15), Z0, Z0
	VPADDD Z0, Z4, Z4
	ADDQ $4, R8
	ADDQ $64, R15
	DECQ R12
	JNZ g4_group1
	VMOVDQU32 Z4, (CX)
	ADDQ BX, R14
	ADDQ $64, DI
	ADDQ $64, CX
	DECQ nt+40(FP)
	JMP g4_tiles1
g4_done:
	VZEROUPPER
	RET
