//go:build !purego

#include "textflag.h"

// func addArithAVX512(dst, a, b *int8, n int, c *int64)
// The CNN runtime's Add in 16 lanes, TFLite's arithmetic step by step (see add): x = (a - zA) << 20,
// xa = (x*m0A + roundA) >> rightA, the same for b, s = xa + yb, out = clamp((s*m0 + round) >> right,
// lo-zp, hi-zp) + zp, all in int64 lanes (even dwords, then odd dwords shifted down, merged
// before the narrowing store). The caller guarantees that xa and yb never saturate and that
// their sum fits int32 (addInputTables), so this equals add. c holds zA, zB, m0A, roundA,
// rightA, m0B, roundB, rightB, m0, round, right, lo-zp, hi-zp, zp; n a positive multiple of 16.
TEXT ·addArithAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), AX
	VPBROADCASTD 0(AX), Z16
	VPBROADCASTD 8(AX), Z17
	VPBROADCASTQ 16(AX), Z18
	VPBROADCASTQ 24(AX), Z19
	VPBROADCASTQ 32(AX), Z20
	VPBROADCASTQ 40(AX), Z21
	VPBROADCASTQ 48(AX), Z22
	VPBROADCASTQ 56(AX), Z23
	VPBROADCASTQ 64(AX), Z24
	VPBROADCASTQ 72(AX), Z25
	VPBROADCASTQ 80(AX), Z26
	VPBROADCASTQ 88(AX), Z27
	VPBROADCASTQ 96(AX), Z28
	VPBROADCASTD 104(AX), Z29
	MOVQ $0xAAAA, AX
	KMOVW AX, K1
arith_loop:
	VPMOVSXBD (SI), Z0
	VPMOVSXBD (DX), Z2
	VPSUBD Z16, Z0, Z0
	VPSUBD Z17, Z2, Z2
	VPSLLD $20, Z0, Z0
	VPSLLD $20, Z2, Z2
	VPSRLQ $32, Z0, Z1
	VPSRLQ $32, Z2, Z3
	VPMULDQ Z18, Z0, Z0
	VPMULDQ Z18, Z1, Z1
	VPMULDQ Z21, Z2, Z2
	VPMULDQ Z21, Z3, Z3
	VPADDQ Z19, Z0, Z0
	VPADDQ Z19, Z1, Z1
	VPADDQ Z22, Z2, Z2
	VPADDQ Z22, Z3, Z3
	VPSRAVQ Z20, Z0, Z0
	VPSRAVQ Z20, Z1, Z1
	VPSRAVQ Z23, Z2, Z2
	VPSRAVQ Z23, Z3, Z3
	VPADDQ Z2, Z0, Z0
	VPADDQ Z3, Z1, Z1
	VPMULDQ Z24, Z0, Z0
	VPMULDQ Z24, Z1, Z1
	VPADDQ Z25, Z0, Z0
	VPADDQ Z25, Z1, Z1
	VPSRAVQ Z26, Z0, Z0
	VPSRAVQ Z26, Z1, Z1
	VPMAXSQ Z27, Z0, Z0
	VPMAXSQ Z27, Z1, Z1
	VPMINSQ Z28, Z0, Z0
	VPMINSQ Z28, Z1, Z1
	VPSLLQ $32, Z1, Z1
	VMOVDQA32 Z1, K1, Z0
	VPADDD Z29, Z0, Z0
	VPMOVDB Z0, (DI)
	ADDQ $16, SI
	ADDQ $16, DX
	ADDQ $16, DI
	SUBQ $16, CX
	JNZ arith_loop
	VZEROUPPER
	RET
