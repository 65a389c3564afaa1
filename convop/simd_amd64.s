//go:build !purego

#include "textflag.h"

// func addToAVX2(dst, src *float32, n int)
// dst[i] += src[i] for i < n, n a multiple of 8.
TEXT ·addToAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   add_done
add_loop:
	VMOVUPS (SI), Y0
	VADDPS  (DI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     add_loop
add_done:
	VZEROUPPER
	RET

// func reluAVX2(x, y *float32, n int)
// y[i] = max(x[i], 0), NaN kept (VMAXPS returns its second source, x, when
// either is NaN); n a multiple of 8.
TEXT ·reluAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y1, Y1, Y1
	SHRQ $3, CX
	JZ   relu_done
relu_loop:
	VMOVUPS (SI), Y0
	VMAXPS  Y0, Y1, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     relu_loop
relu_done:
	VZEROUPPER
	RET

// func reluGradAVX2(x, dy, dx *float32, n int)
// dx[i] = dy[i] where x[i] >= 0 (ordered compare: NaN gives 0), else 0;
// n a multiple of 8.
TEXT ·reluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), BX
	MOVQ dx+16(FP), DI
	MOVQ n+24(FP), CX
	VXORPS Y1, Y1, Y1
	SHRQ $3, CX
	JZ   grad_done
grad_loop:
	VMOVUPS (SI), Y0
	VCMPPS  $13, Y1, Y0, Y2
	VANDPS  (BX), Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, BX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     grad_loop
grad_done:
	VZEROUPPER
	RET
