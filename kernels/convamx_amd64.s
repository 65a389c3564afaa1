//go:build !purego

#include "textflag.h"

// Intel AMX-INT8 kernels of FusedConv (see convamx.go). The Go assembler has no AMX mnemonics,
// so the few instructions used are encoded here (VEX, map 0F38, W0, L0; Intel SDM vol. 2):
// TILELOADD tmm, [base+index*1]  F2 4B /r (SIB)    TILESTORED [base+index*1], tmm  F3 4B /r
// TDPBUSD tmm1, tmm2(u8), tmm3(s8)  66 5E /r, tmm3 in VEX.vvvv
// TILEZERO tmm  F2 49 /r (mod 11)   LDTILECFG m512  NP 49 /0   TILERELEASE  NP 49 C0

#define LDTILECFG_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0x00
#define TILERELEASE BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0xC0
#define TILEZERO_0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xC0
#define TILEZERO_1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xC8
#define TILEZERO_2 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xD0
#define TILEZERO_3 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xD8
// TILELOADD tmm4, (SI)(BX*1); tmm5, (CX)(BX*1); tmm6, (DI)(DX*1); tmm7, (R8)(DX*1)
#define LOAD_A0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x24; BYTE $0x1E
#define LOAD_A1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x2C; BYTE $0x19
#define LOAD_B0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x34; BYTE $0x17
#define LOAD_B1 BYTE $0xC4; BYTE $0xC2; BYTE $0x7B; BYTE $0x4B; BYTE $0x3C; BYTE $0x10
// TDPBUSD tmm0 += tmm4.tmm6; tmm1 += tmm4.tmm7; tmm2 += tmm5.tmm6; tmm3 += tmm5.tmm7
#define DP_00 BYTE $0xC4; BYTE $0xE2; BYTE $0x49; BYTE $0x5E; BYTE $0xC4
#define DP_01 BYTE $0xC4; BYTE $0xE2; BYTE $0x41; BYTE $0x5E; BYTE $0xCC
#define DP_10 BYTE $0xC4; BYTE $0xE2; BYTE $0x49; BYTE $0x5E; BYTE $0xD5
#define DP_11 BYTE $0xC4; BYTE $0xE2; BYTE $0x41; BYTE $0x5E; BYTE $0xDD
// TDPBSUD (signed A, unsigned B), the same operands: VEX.F3 instead of VEX.66
#define DPS_00 BYTE $0xC4; BYTE $0xE2; BYTE $0x4A; BYTE $0x5E; BYTE $0xC4
#define DPS_01 BYTE $0xC4; BYTE $0xE2; BYTE $0x42; BYTE $0x5E; BYTE $0xCC
#define DPS_10 BYTE $0xC4; BYTE $0xE2; BYTE $0x4A; BYTE $0x5E; BYTE $0xD5
#define DPS_11 BYTE $0xC4; BYTE $0xE2; BYTE $0x42; BYTE $0x5E; BYTE $0xDD
// TILESTORED (SI)(AX*1), tmm0..3
#define STORE_0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x04; BYTE $0x06
#define STORE_1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x0C; BYTE $0x06
#define STORE_2 BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x14; BYTE $0x06
#define STORE_3 BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x1C; BYTE $0x06

// The epilogue's steps for one tile of 16 channels: the int32 sums at a(DX) (pooled: the max
// with the sums R10, R11 and R12 bytes on) into Z0; Z0 plus the offsets at o(BX), requantized
// with the table at e(AX) and stored as 16 int8 at d(DI), by the saturating narrow (Sat table)
// or by the clamp to Z29..Z30 (bounds minus zero point) and the zero point in Z31.
#define EPI_LOAD_POOL(a) VMOVDQU32 a(DX), Z0; VPMAXSD a(DX)(R10*1), Z0, Z0; VPMAXSD a(DX)(R11*1), Z0, Z0; VPMAXSD a(DX)(R12*1), Z0, Z0
#define EPI_LOAD_ROW(a) VMOVDQU32 a(DX), Z0
#define EPI_MUL(o, e) VPADDD o(BX), Z0, Z0; VPMULDQ (e)(AX), Z0, Z16; VPSRLQ $32, Z0, Z17; VPMULDQ (e+64)(AX), Z17, Z17; VPADDQ (e+128)(AX), Z16, Z16; VPADDQ (e+192)(AX), Z17, Z17; VPSRAVQ (e+256)(AX), Z16, Z16; VPSRAVQ (e+320)(AX), Z17, Z17
#define EPI_SAT(o, e, d) EPI_MUL(o, e); VPMOVSQB Z16, X16; VPMOVSQB Z17, X17; VPUNPCKLBW X17, X16, X16; VMOVDQU8 X16, d(DI)
#define EPI_CLAMPV(o, e) EPI_MUL(o, e); VPMAXSQ Z29, Z16, Z16; VPMAXSQ Z29, Z17, Z17; VPMINSQ Z30, Z16, Z16; VPMINSQ Z30, Z17, Z17; VPSLLQ $32, Z17, Z17; VPBLENDMD Z17, Z16, K3, Z16; VPADDD Z31, Z16, Z16; VPMOVDB Z16, X16
#define EPI_CLAMP(o, e, d) EPI_CLAMPV(o, e); VMOVDQU8 X16, d(DI)

// AMX_EPI is the body of the convolution epilogues: per output row and pixel, the channel
// tiles in pairs, then a lone one; LOAD and REQ are the per-tile steps above. Registers: R8 the
// row's first pixel, SI the pixel, DX/BX/AX/DI its sums, offsets, table and output; K3 the odd
// dwords; Z29-Z31 the clamp bounds minus zp and zp.
#define AMX_EPI(LOAD, REQ) \
	MOVQ zp+72(FP), AX \
	VPBROADCASTD AX, Z31 \
	MOVQ lo+80(FP), CX \
	SUBQ AX, CX \
	VPBROADCASTQ CX, Z29 \
	MOVQ hi+88(FP), CX \
	SUBQ AX, CX \
	VPBROADCASTQ CX, Z30 \
	MOVL $0xaaaa, CX \
	KMOVW CX, K3 \
	MOVQ acc+0(FP), R8 \
	MOVQ dst+96(FP), DI \
	MOVQ ldc+8(FP), R10 \
	MOVQ rs+16(FP), R11 \
	LEAQ (R10)(R11*1), R12 \
	MOVQ oh+40(FP), R9 \
y: \
	MOVQ R8, SI \
	MOVQ ow+48(FP), R14 \
x: \
	MOVQ off+56(FP), BX \
	MOVQ epi+64(FP), AX \
	MOVQ SI, DX \
	MOVQ nt+104(FP), CX \
	SHRQ $1, CX \
	JZ lone \
pair: \
	LOAD(0) \
	REQ(0, 0, 0) \
	LOAD(64) \
	REQ(64, 384, 16) \
	ADDQ $128, DX \
	ADDQ $128, BX \
	ADDQ $768, AX \
	ADDQ $32, DI \
	DECQ CX \
	JNZ pair \
lone: \
	MOVQ nt+104(FP), CX \
	ANDQ $1, CX \
	JZ next \
	LOAD(0) \
	REQ(0, 0, 0) \
	ADDQ $16, DI \
next: \
	ADDQ pstep+24(FP), SI \
	DECQ R14 \
	JNZ x \
	ADDQ rstep+32(FP), R8 \
	DECQ R9 \
	JNZ y \
	VZEROUPPER \
	RET

// func amxConv(cfg *byte, a *uint8, lda, kstep int, w *int8, wts, wq, kh, chunks, cb int, acc *int32, ldc, mpairs, nt, a1 int, sa bool)
// For each pair of 16-row M tiles (raster rows 32i..32i+31, A rows lda bytes apart from a) and
// each pair of 16-channel N tiles (weight tiles wts bytes apart from w; the last tile alone if
// nt is odd), the sum over kernel rows and chunks of A (cb bytes per row) times B (cb/4 rows of
// 64 bytes, wq bytes per chunk) into C tiles (four, or two for a lone N tile), stored as int32
// rows ldc bytes apart at acc. After a kernel row's chunks, A moves on by kstep bytes (the
// padded row minus the chunks' bytes). A is unsigned and B signed (TDPBUSD), or with sa, A signed
// and B unsigned (TDPBSUD: the GEMM's activations and w+128 panel). The second M tile of a pair
// starts a1 bytes after the first (16*lda, or 0 to repeat the first one where the rows end).
TEXT ·amxConv(SB), NOSPLIT, $0-121
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ lda+16(FP), BX
	MOVQ $64, DX
	MOVQ a+8(FP), R13         // A of this M pair
	MOVQ acc+80(FP), R14      // C of this M pair
	MOVQ mpairs+96(FP), R12
amx_m:
	MOVQ w+32(FP), R11        // B of this N pair
	MOVQ R14, R9              // C of this N pair
	MOVQ nt+104(FP), R15      // N tiles left
amx_n:
	TILEZERO_0
	TILEZERO_2
	MOVQ R13, SI
	MOVQ a1+112(FP), CX
	ADDQ SI, CX               // A of the second M tile
	MOVQ R11, DI
	MOVQ kh+56(FP), R10
	CMPQ R15, $1
	JEQ amx_h1
	TILEZERO_1
	TILEZERO_3
	MOVQ wts+40(FP), R8
	ADDQ DI, R8               // B of the second N tile
amx_h:
	MOVQ chunks+64(FP), AX
amx_q:
	LOAD_A0
	LOAD_A1
	LOAD_B0
	LOAD_B1
	CMPB sa+120(FP), $0
	JNE amx_qs
	DP_00
	DP_01
	DP_10
	DP_11
	JMP amx_qnext
amx_qs:
	DPS_00
	DPS_01
	DPS_10
	DPS_11
amx_qnext:
	ADDQ cb+72(FP), SI
	ADDQ cb+72(FP), CX
	ADDQ wq+48(FP), DI
	ADDQ wq+48(FP), R8
	DECQ AX
	JNZ amx_q
	ADDQ kstep+24(FP), SI
	ADDQ kstep+24(FP), CX
	DECQ R10
	JNZ amx_h
	MOVQ ldc+88(FP), AX
	MOVQ R9, SI
	STORE_0
	ADDQ $64, SI
	STORE_1
	MOVQ AX, CX
	SHLQ $4, CX
	ADDQ CX, SI
	STORE_3
	SUBQ $64, SI
	STORE_2
	ADDQ $128, R9
	MOVQ wts+40(FP), CX
	LEAQ (R11)(CX*2), R11
	SUBQ $2, R15
	JNZ amx_n
	JMP amx_mnext
amx_h1: // a lone N tile: C0 and C2 only
	MOVQ chunks+64(FP), AX
amx_q1:
	LOAD_A0
	LOAD_A1
	LOAD_B0
	CMPB sa+120(FP), $0
	JNE amx_q1s
	DP_00
	DP_10
	JMP amx_q1next
amx_q1s:
	DPS_00
	DPS_10
amx_q1next:
	ADDQ cb+72(FP), SI
	ADDQ cb+72(FP), CX
	ADDQ wq+48(FP), DI
	DECQ AX
	JNZ amx_q1
	ADDQ kstep+24(FP), SI
	ADDQ kstep+24(FP), CX
	DECQ R10
	JNZ amx_h1
	MOVQ ldc+88(FP), AX
	MOVQ R9, SI
	STORE_0
	MOVQ AX, CX
	SHLQ $4, CX
	ADDQ CX, SI
	STORE_2
amx_mnext:
	MOVQ BX, CX
	SHLQ $5, CX
	ADDQ CX, R13              // 32 raster rows on
	MOVQ ldc+88(FP), CX
	SHLQ $5, CX
	ADDQ CX, R14
	DECQ R12
	JNZ amx_m
	TILERELEASE
	RET

// func amxEpiPool(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)
// For oh x ow output pixels (pixel steps pstep and row steps rstep bytes in acc) and nt tiles of
// 16 channels: the max of the int32 sums of the pixel, its right neighbour (ldc bytes on) and the
// two below them (rs bytes on), plus off, requantized with the VNNI kernels' epilogue table epi
// (epiTile int64 per tile) and clamped to [lo, hi], as int8 at dst (16*nt bytes per pixel,
// contiguous). amxEpiRow takes the pixel's sums alone; the Sat forms take the Sat kernels'
// table (zero point folded into the rounding terms; clamp bounds -128 and 127) and clamp by the
// saturating narrow to int8.
TEXT ·amxEpiPool(SB), NOSPLIT, $0-112
	AMX_EPI(EPI_LOAD_POOL, EPI_CLAMP)

// func amxEpiPoolSat(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)
TEXT ·amxEpiPoolSat(SB), NOSPLIT, $0-112
	AMX_EPI(EPI_LOAD_POOL, EPI_SAT)

// func amxEpiRow(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)
TEXT ·amxEpiRow(SB), NOSPLIT, $0-112
	AMX_EPI(EPI_LOAD_ROW, EPI_CLAMP)

// func amxEpiRowSat(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)
TEXT ·amxEpiRowSat(SB), NOSPLIT, $0-112
	AMX_EPI(EPI_LOAD_ROW, EPI_SAT)

// func amxEpiGemm(acc *int32, ldc, rows int, off, roff *int32, epi *int64, zp, lo, hi int64, dst *int8, ldd, nt int, mask uint64)
// The GEMM's epilogue on rows x nt tiles of 16 int32 sums (rows ldc bytes apart at acc): plus
// the column offsets off and the row's offset roff[r], requantized with the table epi (as for
// the convolutions, epiTile int64 per tile) and clamped to [lo, hi], as int8 rows ldd bytes
// apart at dst; the last tile stores only the bytes set in mask.
TEXT ·amxEpiGemm(SB), NOSPLIT, $0-104
	MOVQ zp+48(FP), AX
	VPBROADCASTD AX, Z31
	MOVQ lo+56(FP), CX
	SUBQ AX, CX
	VPBROADCASTQ CX, Z29
	MOVQ hi+64(FP), CX
	SUBQ AX, CX
	VPBROADCASTQ CX, Z30
	MOVL $0xaaaa, CX
	KMOVW CX, K3              // odd dwords
	MOVQ mask+96(FP), CX
	KMOVW CX, K2
	MOVQ acc+0(FP), SI
	MOVQ dst+72(FP), R10
	MOVQ roff+32(FP), R8
	MOVQ rows+16(FP), R9
gemm_row:
	VPBROADCASTD (R8), Z1     // the row's offset
	MOVQ off+24(FP), BX
	MOVQ epi+40(FP), AX
	MOVQ SI, DX
	MOVQ R10, DI
	MOVQ nt+88(FP), CX
	DECQ CX
	JZ gemm_last
gemm_tile:
	VPADDD (DX), Z1, Z0
	EPI_CLAMP(0, 0, 0)
	ADDQ $64, DX
	ADDQ $64, BX
	ADDQ $384, AX
	ADDQ $16, DI
	DECQ CX
	JNZ gemm_tile
gemm_last:
	VPADDD (DX), Z1, Z0
	EPI_CLAMPV(0, 0)
	VMOVDQU8 X16, K2, (DI)
	ADDQ ldc+8(FP), SI
	ADDQ ldd+80(FP), R10
	ADDQ $4, R8
	DECQ R9
	JNZ gemm_row
	VZEROUPPER
	RET

// func amxEpiGemm32(acc *int32, ldc, rows int, off, roff *int32, dst *int32, ldd, nt int, mask uint64)
// amxEpiGemm for int32 results: the sums plus the column and row offsets, stored as int32 rows
// ldd bytes apart at dst; the last tile stores only the lanes set in mask.
TEXT ·amxEpiGemm32(SB), NOSPLIT, $0-72
	MOVQ mask+64(FP), CX
	KMOVW CX, K2
	MOVQ acc+0(FP), SI
	MOVQ dst+40(FP), R10
	MOVQ roff+32(FP), R8
	MOVQ rows+16(FP), R9
g32_row:
	VPBROADCASTD (R8), Z1
	MOVQ off+24(FP), BX
	MOVQ SI, DX
	MOVQ R10, DI
	MOVQ nt+56(FP), CX
	DECQ CX
	JZ g32_last
g32_tile:
	VPADDD (DX), Z1, Z0
	VPADDD (BX), Z0, Z0
	VMOVDQU32 Z0, (DI)
	ADDQ $64, DX
	ADDQ $64, BX
	ADDQ $64, DI
	DECQ CX
	JNZ g32_tile
g32_last:
	VPADDD (DX), Z1, Z0
	VPADDD (BX), Z0, Z0
	VMOVDQU32 Z0, K2, (DI)
	ADDQ ldc+8(FP), SI
	ADDQ ldd+48(FP), R10
	ADDQ $4, R8
	DECQ R9
	JNZ g32_row
	VZEROUPPER
	RET

// func peakTDPBUSD(cfg *byte, n int)
// n iterations of four independent register-only TDPBUSD (tmm0-3 += tmm4 . tmm6/7, tmm5 .
// tmm6/7) on zeroed tiles: the AMX-INT8 peak, for BenchmarkPeakTDPBUSD.
TEXT ·peakTDPBUSD(SB), NOSPLIT, $0-16
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ n+8(FP), CX
	TILEZERO_0
	TILEZERO_1
	TILEZERO_2
	TILEZERO_3
	BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xE0 // TILEZERO tmm4
	BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xE8 // TILEZERO tmm5
	BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xF0 // TILEZERO tmm6
	BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xF8 // TILEZERO tmm7
peak_tdp:
	DP_00
	DP_01
	DP_10
	DP_11
	DECQ CX
	JNZ peak_tdp
	TILERELEASE
	RET
