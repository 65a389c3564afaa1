//go:build !purego

#include "textflag.h"

// func vnniGemvTail(a *int8, kg int, w *byte, ts int, nt int, off *int32, c *int32)
// vnniGemv for fewer than 8 tiles (hand-written): c[j] = off[j] + sum_g dot(u8 w tile, a[4g:4g+4]).
// vnniGemv runs one dependent VPDPBUSD chain of kg steps per tile when fewer than 8 tiles are
// left, which is bound by the instruction's latency for the small layers of a tiny LM; here 4
// tiles run with two chains each (even and odd groups) and a last lone tile with four.
TEXT ·vnniGemvTail(SB), NOSPLIT, $0-56
	MOVQ a+0(FP), SI
	MOVQ kg+8(FP), R13
	MOVQ w+16(FP), R9
	MOVQ ts+24(FP), AX
	MOVQ nt+32(FP), R15
	MOVQ off+40(FP), DI
	MOVQ c+48(FP), CX

gt_tiles4:
	CMPQ R15, $4
	JLT  gt_tiles1
	LEAQ (R9)(AX*2), DX
	ADDQ AX, DX           // DX = tile 3
	VMOVDQU32 0(DI), Z0
	VMOVDQU32 64(DI), Z1
	VMOVDQU32 128(DI), Z2
	VMOVDQU32 192(DI), Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ SI, R10
	MOVQ R9, R8
	MOVQ R13, R11
gt_loop4:
	CMPQ R11, $2
	JLT  gt_last4
	VMOVDQU32 (R8), Z8
	VMOVDQU32 (R8)(AX*1), Z9
	VMOVDQU32 (R8)(AX*2), Z10
	VMOVDQU32 (DX), Z11
	VMOVDQU32 64(R8), Z12
	VMOVDQU32 64(R8)(AX*1), Z13
	VMOVDQU32 64(R8)(AX*2), Z14
	VMOVDQU32 64(DX), Z15
	VPDPBUSD.BCST (R10), Z8, Z0
	VPDPBUSD.BCST (R10), Z9, Z1
	VPDPBUSD.BCST (R10), Z10, Z2
	VPDPBUSD.BCST (R10), Z11, Z3
	VPDPBUSD.BCST 4(R10), Z12, Z4
	VPDPBUSD.BCST 4(R10), Z13, Z5
	VPDPBUSD.BCST 4(R10), Z14, Z6
	VPDPBUSD.BCST 4(R10), Z15, Z7
	ADDQ $8, R10
	ADDQ $128, R8
	ADDQ $128, DX
	SUBQ $2, R11
	JMP  gt_loop4
gt_last4:
	TESTQ R11, R11
	JZ    gt_store4
	VMOVDQU32 (R8), Z8
	VMOVDQU32 (R8)(AX*1), Z9
	VMOVDQU32 (R8)(AX*2), Z10
	VMOVDQU32 (DX), Z11
	VPDPBUSD.BCST (R10), Z8, Z0
	VPDPBUSD.BCST (R10), Z9, Z1
	VPDPBUSD.BCST (R10), Z10, Z2
	VPDPBUSD.BCST (R10), Z11, Z3
gt_store4:
	VPADDD Z4, Z0, Z0
	VPADDD Z5, Z1, Z1
	VPADDD Z6, Z2, Z2
	VPADDD Z7, Z3, Z3
	VMOVDQU32 Z0, 0(CX)
	VMOVDQU32 Z1, 64(CX)
	VMOVDQU32 Z2, 128(CX)
	VMOVDQU32 Z3, 192(CX)
	LEAQ (R9)(AX*4), R9
	ADDQ $256, DI
	ADDQ $256, CX
	SUBQ $4, R15
	JMP  gt_tiles4

gt_tiles1:
	TESTQ R15, R15
	JZ    gt_done
	VMOVDQU32 (DI), Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ SI, R10
	MOVQ R9, R8
	MOVQ R13, R11
gt_loop1:
	CMPQ R11, $4
	JLT  gt_last1
	VMOVDQU32 (R8), Z8
	VMOVDQU32 64(R8), Z9
	VMOVDQU32 128(R8), Z10
	VMOVDQU32 192(R8), Z11
	VPDPBUSD.BCST (R10), Z8, Z0
	VPDPBUSD.BCST 4(R10), Z9, Z1
	VPDPBUSD.BCST 8(R10), Z10, Z2
	VPDPBUSD.BCST 12(R10), Z11, Z3
	ADDQ $16, R10
	ADDQ $256, R8
	SUBQ $4, R11
	JMP  gt_loop1
gt_last1:
	TESTQ R11, R11
	JZ    gt_store1
	VMOVDQU32 (R8), Z8
	VPDPBUSD.BCST (R10), Z8, Z0
	ADDQ $4, R10
	ADDQ $64, R8
	DECQ R11
	JMP  gt_last1
gt_store1:
	VPADDD Z1, Z0, Z0
	VPADDD Z3, Z2, Z2
	VPADDD Z2, Z0, Z0
	VMOVDQU32 Z0, (CX)
	ADDQ AX, R9
	ADDQ $64, DI
	ADDQ $64, CX
	DECQ R15
	JMP  gt_tiles1
gt_done:
	VZEROUPPER
	RET
