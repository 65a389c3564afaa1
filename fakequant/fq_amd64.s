//go:build !purego

#include "textflag.h"

// AVX2 float32 fake-quant forward, stride 1, one (s, lo, hi). Each 8-lane block:
//   non-finite check: x-x unordered -> stop before the block (Go finishes it and reports the index)
//   v = x/s; t = trunc(v); f = v-t (exact); r = t + (|f| >= 0.5 ? copysign(1, v) : 0)
//   (quant.Round: half away from zero), yin = (r+0)*s, ain = r-v
//   inside = v > vlo && v < vhi; clipped: v < 0 ? (ylo, -2) : (yhi, 2)
// k points at four 8-lane vectors: vlo, vhi, ylo, yhi (offsets 0, 32, 64, 96).

// Constants: Y5 sign mask, Y6 0.5, Y7 1.0, Y8 +0, Y9 2.0, Y0 s.
#define FQ_SETUP \
	MOVL $0x80000000, AX \
	VMOVD AX, X5 \
	VBROADCASTSS X5, Y5 \
	MOVL $0x3f000000, AX \
	VMOVD AX, X6 \
	VBROADCASTSS X6, Y6 \
	MOVL $0x3f800000, AX \
	VMOVD AX, X7 \
	VBROADCASTSS X7, Y7 \
	VXORPS Y8, Y8, Y8 \
	MOVL $0x40000000, AX \
	VMOVD AX, X9 \
	VBROADCASTSS X9, Y9 \
	VBROADCASTSS s+32(FP), Y0

// FQ_BODY: x block in Y10 (already checked finite); stores y and aux at index BX.
#define FQ_BODY \
	VDIVPS Y0, Y10, Y11 \
	VROUNDPS $3, Y11, Y12 \
	VSUBPS Y12, Y11, Y13 \
	VANDNPS Y13, Y5, Y13 \
	VCMPPS $0x1d, Y6, Y13, Y13 \
	VANDPS Y11, Y5, Y14 \
	VORPS Y7, Y14, Y14 \
	VANDPS Y14, Y13, Y13 \
	VADDPS Y13, Y12, Y12 \
	VSUBPS Y11, Y12, Y13 \
	VADDPS Y8, Y12, Y12 \
	VMULPS Y0, Y12, Y12 \
	VCMPPS $0x11, Y8, Y11, Y14 \
	VMOVUPS 96(R8), Y15 \
	VBLENDVPS Y14, 64(R8), Y15, Y15 \
	VANDPS Y14, Y5, Y14 \
	VORPS Y9, Y14, Y14 \
	VCMPPS $0x1e, (R8), Y11, Y3 \
	VCMPPS $0x11, 32(R8), Y11, Y4 \
	VANDPS Y4, Y3, Y3 \
	VBLENDVPS Y3, Y12, Y15, Y15 \
	VBLENDVPS Y3, Y13, Y14, Y14 \
	VMOVUPS Y15, (DI)(BX*4) \
	VMOVUPS Y14, (DX)(BX*4)

// func fqRunAVX2(x, y, aux *float32, n int, s float32, k *[4][8]float32) int
TEXT ·fqRunAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ aux+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ k+40(FP), R8
	ANDQ $-8, CX
	FQ_SETUP
	XORQ BX, BX
	CMPQ BX, CX
	JGE  done

loop:
	VMOVUPS (SI)(BX*4), Y10
	VSUBPS  Y10, Y10, Y13
	VCMPPS  $3, Y13, Y13, Y13
	VMOVMSKPS Y13, AX
	TESTL   AX, AX
	JNZ     done
	FQ_BODY
	ADDQ $8, BX
	CMPQ BX, CX
	JLT  loop

done:
	MOVQ BX, ret+48(FP)
	VZEROUPPER
	RET

// func fqRunMinMaxAVX2(x, y, aux *float32, n int, s float32, k *[4][8]float32, mm *[2][8]float32) int
// mm holds the running per-lane min (mm[0]) and max (mm[1]) in and out: lane = (lane < x) ? lane : x
// with the sequential rule "replace only when x < mn" (x > mx).
TEXT ·fqRunMinMaxAVX2(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ aux+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ k+40(FP), R8
	MOVQ mm+48(FP), R9
	ANDQ $-8, CX
	FQ_SETUP
	VMOVUPS (R9), Y1
	VMOVUPS 32(R9), Y2
	XORQ BX, BX
	CMPQ BX, CX
	JGE  mmdone

mmloop:
	VMOVUPS (SI)(BX*4), Y10
	VSUBPS  Y10, Y10, Y13
	VCMPPS  $3, Y13, Y13, Y13
	VMOVMSKPS Y13, AX
	TESTL   AX, AX
	JNZ     mmdone
	VMINPS  Y1, Y10, Y1
	VMAXPS  Y2, Y10, Y2
	FQ_BODY
	ADDQ $8, BX
	CMPQ BX, CX
	JLT  mmloop

mmdone:
	VMOVUPS Y1, (R9)
	VMOVUPS Y2, 32(R9)
	MOVQ BX, ret+56(FP)
	VZEROUPPER
	RET

// func fqRowsAVX2(x, y, aux, s, lo, hi *float32, n, c int) int
// Rows of c elements (c a multiple of 8, n a multiple of 8 and of c or n = c): element j of each row
// uses s[j], lo[j], hi[j] (vlo = lo-0.5, vhi = hi+0.5, clipped outputs lo*s, hi*s, as fqRows).
// Stops before the first block holding a non-finite input; returns the elements done.
TEXT ·fqRowsAVX2(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ aux+16(FP), DX
	MOVQ s+24(FP), R8
	MOVQ lo+32(FP), R9
	MOVQ hi+40(FP), R10
	MOVQ n+48(FP), CX
	MOVQ c+56(FP), R12
	ANDQ $-8, CX
	MOVL $0x80000000, AX
	VMOVD AX, X5
	VBROADCASTSS X5, Y5
	MOVL $0x3f000000, AX
	VMOVD AX, X6
	VBROADCASTSS X6, Y6
	MOVL $0x3f800000, AX
	VMOVD AX, X7
	VBROADCASTSS X7, Y7
	VXORPS Y8, Y8, Y8
	MOVL $0x40000000, AX
	VMOVD AX, X9
	VBROADCASTSS X9, Y9
	XORQ BX, BX
	XORQ R11, R11

rloop:
	CMPQ BX, CX
	JGE  rdone
	VMOVUPS (SI)(BX*4), Y10
	VSUBPS  Y10, Y10, Y13
	VCMPPS  $3, Y13, Y13, Y13
	VMOVMSKPS Y13, AX
	TESTL   AX, AX
	JNZ     rdone
	VMOVUPS (R8)(R11*4), Y0
	VMOVUPS (R9)(R11*4), Y1
	VMOVUPS (R10)(R11*4), Y2
	VDIVPS  Y0, Y10, Y11        // v = x/s
	VSUBPS  Y6, Y1, Y3          // vlo = lo-0.5
	VCMPPS  $0x1e, Y3, Y11, Y3  // v > vlo
	VADDPS  Y6, Y2, Y4          // vhi = hi+0.5
	VCMPPS  $0x11, Y4, Y11, Y4  // v < vhi
	VANDPS  Y4, Y3, Y3          // inside
	VMULPS  Y0, Y1, Y1          // lo*s
	VMULPS  Y0, Y2, Y2          // hi*s
	VROUNDPS $3, Y11, Y12       // t = trunc(v)
	VSUBPS  Y12, Y11, Y13       // f = v-t
	VANDNPS Y13, Y5, Y13        // |f|
	VCMPPS  $0x1d, Y6, Y13, Y13 // |f| >= 0.5
	VANDPS  Y11, Y5, Y14
	VORPS   Y7, Y14, Y14        // copysign(1, v)
	VANDPS  Y14, Y13, Y13
	VADDPS  Y13, Y12, Y12       // r
	VSUBPS  Y11, Y12, Y13       // r-v
	VADDPS  Y8, Y12, Y12        // r+0
	VMULPS  Y0, Y12, Y12        // (r+0)*s
	VCMPPS  $0x11, Y8, Y11, Y14 // v < 0
	VBLENDVPS Y14, Y1, Y2, Y15  // v < 0 ? lo*s : hi*s
	VANDPS  Y14, Y5, Y14
	VORPS   Y9, Y14, Y14        // v < 0 ? -2 : 2
	VBLENDVPS Y3, Y12, Y15, Y15
	VBLENDVPS Y3, Y13, Y14, Y14
	VMOVUPS Y15, (DI)(BX*4)
	VMOVUPS Y14, (DX)(BX*4)
	ADDQ $8, BX
	ADDQ $8, R11
	CMPQ R11, R12
	JLT  rloop
	XORQ R11, R11
	JMP  rloop

rdone:
	MOVQ BX, ret+64(FP)
	VZEROUPPER
	RET

// func auxBwdAVX2(aux, gy, gx *float32, n int, plain bool, sums *[3][8]float64) int
// Backward from the aux codes for n rounded down to a multiple of 8: a > 1 clipped high, a < -1
// clipped low (ordered compares: NaN counts as inside, as in Go); gx = g inside or with plain, +0
// when clipped. Per-lane float64 sums (lanes 0-3 from the low half, 4-7 from the high half) are
// added into sums[0] (float64(g*a) inside), sums[1] (g clipped low), sums[2] (g clipped high).
// Masked-out lanes add +0, which leaves a sum that started at +0 unchanged.
TEXT ·auxBwdAVX2(SB), NOSPLIT, $0-56
	MOVQ aux+0(FP), SI
	MOVQ gy+8(FP), DI
	MOVQ gx+16(FP), DX
	MOVQ n+24(FP), CX
	MOVBLZX plain+32(FP), AX
	MOVQ sums+40(FP), R8
	ANDQ $-8, CX
	VPCMPEQD Y15, Y15, Y15 // all ones: clipped lanes zero gx
	TESTL AX, AX
	JZ   bwdsetup
	VXORPS Y15, Y15, Y15 // plain: gx = gy everywhere

bwdsetup:
	MOVL $0x3f800000, AX
	VMOVD AX, X0
	VBROADCASTSS X0, Y0 // 1.0
	MOVL $0xbf800000, AX
	VMOVD AX, X1
	VBROADCASTSS X1, Y1 // -1.0
	VMOVUPD (R8), Y2
	VMOVUPD 32(R8), Y3
	VMOVUPD 64(R8), Y4
	VMOVUPD 96(R8), Y5
	VMOVUPD 128(R8), Y6
	VMOVUPD 160(R8), Y7
	XORQ BX, BX
	CMPQ BX, CX
	JGE  bwddone

bwdloop:
	VMOVUPS (SI)(BX*4), Y8      // a
	VMOVUPS (DI)(BX*4), Y9      // g
	VCMPPS  $0x1e, Y0, Y8, Y10  // a > 1
	VCMPPS  $0x11, Y1, Y8, Y11  // a < -1
	VORPS   Y11, Y10, Y12       // clipped
	VMULPS  Y8, Y9, Y13         // g*a
	VANDNPS Y13, Y12, Y13       // inside ? g*a : +0
	VANDPS  Y9, Y10, Y10        // high ? g : +0
	VANDPS  Y9, Y11, Y11        // low ? g : +0
	VANDPS  Y15, Y12, Y12       // clipped and not plain
	VANDNPS Y9, Y12, Y14        // gx
	VMOVUPS Y14, (DX)(BX*4)
	VCVTPS2PD X13, Y14
	VADDPD  Y14, Y2, Y2
	VEXTRACTF128 $1, Y13, X13
	VCVTPS2PD X13, Y13
	VADDPD  Y13, Y3, Y3
	VCVTPS2PD X11, Y14
	VADDPD  Y14, Y4, Y4
	VEXTRACTF128 $1, Y11, X11
	VCVTPS2PD X11, Y11
	VADDPD  Y11, Y5, Y5
	VCVTPS2PD X10, Y14
	VADDPD  Y14, Y6, Y6
	VEXTRACTF128 $1, Y10, X10
	VCVTPS2PD X10, Y10
	VADDPD  Y10, Y7, Y7
	ADDQ $8, BX
	CMPQ BX, CX
	JLT  bwdloop

bwddone:
	VMOVUPD Y2, (R8)
	VMOVUPD Y3, 32(R8)
	VMOVUPD Y4, 64(R8)
	VMOVUPD Y5, 96(R8)
	VMOVUPD Y6, 128(R8)
	VMOVUPD Y7, 160(R8)
	MOVQ BX, ret+48(FP)
	VZEROUPPER
	RET

// func minMaxAVX2(x *float32, n int, mm *[2][8]float32) int
// Per-lane running min mm[0] and max mm[1] over x[:n] (n rounded down to a multiple of 8), lane
// replaced only when x < lane (x > lane). Stops before the first block holding a non-finite value
// and returns the elements done.
TEXT ·minMaxAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ mm+16(FP), R9
	ANDQ $-8, CX
	VMOVUPS (R9), Y1
	VMOVUPS 32(R9), Y2
	XORQ BX, BX
	CMPQ BX, CX
	JGE  mxdone

mxloop:
	VMOVUPS (SI)(BX*4), Y10
	VSUBPS  Y10, Y10, Y13
	VCMPPS  $3, Y13, Y13, Y13
	VMOVMSKPS Y13, AX
	TESTL   AX, AX
	JNZ     mxdone
	VMINPS  Y1, Y10, Y1
	VMAXPS  Y2, Y10, Y2
	ADDQ $8, BX
	CMPQ BX, CX
	JLT  mxloop

mxdone:
	VMOVUPS Y1, (R9)
	VMOVUPS Y2, 32(R9)
	MOVQ BX, ret+24(FP)
	VZEROUPPER
	RET
