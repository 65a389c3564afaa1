//go:build !purego

#include "textflag.h"

// func maxPool2x2RowAVX2(out, r0, r1 *int8, ow, c int, lo, hi int64)
TEXT ·maxPool2x2RowAVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), DX
	MOVQ ow+24(FP), CX
	MOVQ c+32(FP), BX
	MOVQ lo+40(FP), AX
	MOVQ AX, X14
	VPBROADCASTB X14, X14
	MOVQ hi+48(FP), AX
	MOVQ AX, X15
	VPBROADCASTB X15, X15

pixel:
	TESTQ CX, CX
	JZ    done
	LEAQ  (SI)(BX*1), R9  // r0, pixel 2ox+1
	LEAQ  (DX)(BX*1), R10 // r1, pixel 2ox+1
	XORQ  R8, R8

channels:
	VMOVDQU (SI)(R8*1), X0
	VPMAXSB (R9)(R8*1), X0, X0
	VMOVDQU (DX)(R8*1), X1
	VPMAXSB (R10)(R8*1), X1, X1
	VPMAXSB X1, X0, X0
	VPMAXSB X14, X0, X0
	VPMINSB X15, X0, X0
	VMOVDQU X0, (DI)(R8*1)
	ADDQ    $16, R8
	CMPQ    R8, BX
	JLT     channels

	LEAQ (SI)(BX*2), SI
	LEAQ (DX)(BX*2), DX
	ADDQ BX, DI
	DECQ CX
	JMP  pixel

done:
	VZEROUPPER
	RET
