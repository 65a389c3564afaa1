//go:build ignore

// gen_asm writes the micro-kernels of package fgemm in Go assembly:
//
//	go generate ./fgemm   (or: cd fgemm && go run gen_asm.go)
//
// With -out DIR it writes the files into DIR instead (the package test compares them with the
// committed ones).
//
// Every kernel has the Go signature
//
//	func name(kc int, a, b, c *T, ldc int, load bool)
//
// and computes C[0:MR, 0:NR] = Apanel * Bpanel (+ C when load), where Apanel holds kc
// columns of MR values (A packed column by column) and Bpanel holds kc rows
// of NR values; C is row-major with row stride ldc elements.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

type x86Kernel struct {
	name  string
	elem  int    // bytes per element
	vec   int    // bytes per vector register
	reg   string // "Z" or "Y"
	mr    int    // rows
	nv    int    // vectors per row (NR = nv*vec/elem)
	fma   string // VFMADD231PS / VFMADD231PD
	bcast string // VBROADCASTSS / VBROADCASTSD
	// strideB: B is read in place, row p at b + p*ldb (an extra argument
	// ldb int), instead of from a packed panel with rows NR apart.
	strideB bool
}

func genX86(w *bytes.Buffer, k x86Kernel) {
	nr := k.nv * k.vec / k.elem
	acc := func(i, j int) string { return fmt.Sprintf("%s%d", k.reg, i*k.nv+j) }
	bReg := func(j int) string { return fmt.Sprintf("%s%d", k.reg, k.mr*k.nv+j) }
	nregs := map[string]int{"Z": 32, "Y": 16}[k.reg]
	nA := 2 // alternate two broadcast registers when there is room
	if k.mr*k.nv+k.nv+2 > nregs {
		nA = 1
	}
	aReg := func(i int) string { return fmt.Sprintf("%s%d", k.reg, k.mr*k.nv+k.nv+i%nA) }
	if k.mr*k.nv+k.nv+nA > nregs {
		panic("too many registers: " + k.name)
	}
	tname := map[int]string{4: "float32", 8: "float64"}[k.elem]
	shift := map[int]int{4: 2, 8: 3}[k.elem]
	if k.strideB {
		fmt.Fprintf(w, "// func %s(kc int, a, b, c *%s, ldc int, load bool, ldb int)\n", k.name, tname)
		fmt.Fprintf(w, "// C[0:%d, 0:%d] (+)= A panel (kc x %d, packed by column) * B[0:kc, 0:%d] (row stride ldb);\n", k.mr, nr, k.mr, nr)
		fmt.Fprintf(w, "// C is read only when load is true.\n")
		fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-56\n", k.name)
		fmt.Fprintf(w, "\tMOVQ ldb+48(FP), R10\n\tSHLQ $%d, R10\n", shift)
	} else {
		fmt.Fprintf(w, "// func %s(kc int, a, b, c *%s, ldc int, load bool)\n", k.name, tname)
		fmt.Fprintf(w, "// C[0:%d, 0:%d] (+)= A panel (kc x %d, packed by column) * B panel (kc x %d);\n", k.mr, nr, k.mr, nr)
		fmt.Fprintf(w, "// C is read only when load is true.\n")
		fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-41\n", k.name)
	}
	fmt.Fprintf(w, "\tMOVQ kc+0(FP), CX\n\tMOVQ a+8(FP), SI\n\tMOVQ b+16(FP), DI\n\tMOVQ c+24(FP), DX\n\tMOVQ ldc+32(FP), R8\n")
	fmt.Fprintf(w, "\tSHLQ $%d, R8\n", map[int]int{4: 2, 8: 3}[k.elem])
	mov := "VMOVUPS"
	if k.elem == 8 {
		mov = "VMOVUPD"
	}
	// Load C into the accumulators, or zero them.
	zero := "VPXORD"
	if k.reg == "Y" {
		zero = "VPXOR"
	}
	fmt.Fprintf(w, "\tMOVBLZX load+40(FP), AX\n\tTESTL AX, AX\n\tJNZ %s_load\n", k.name)
	for i := 0; i < k.mr; i++ {
		for j := 0; j < k.nv; j++ {
			fmt.Fprintf(w, "\t%s %s, %s, %s\n", zero, acc(i, j), acc(i, j), acc(i, j))
		}
	}
	fmt.Fprintf(w, "\tJMP %s_start\n", k.name)
	fmt.Fprintf(w, "%s_load:\n", k.name)
	fmt.Fprintf(w, "\tMOVQ DX, R9\n")
	for i := 0; i < k.mr; i++ {
		for j := 0; j < k.nv; j++ {
			fmt.Fprintf(w, "\t%s %d(R9), %s\n", mov, j*k.vec, acc(i, j))
		}
		if i+1 < k.mr {
			fmt.Fprintf(w, "\tADDQ R8, R9\n")
		}
	}
	fmt.Fprintf(w, "%s_start:\n", k.name)
	fmt.Fprintf(w, "\tTESTQ CX, CX\n\tJZ %s_store\n", k.name)
	fmt.Fprintf(w, "%s_loop:\n", k.name)
	for j := 0; j < k.nv; j++ {
		fmt.Fprintf(w, "\t%s %d(DI), %s\n", mov, j*k.vec, bReg(j))
	}
	for i := 0; i < k.mr; i++ {
		fmt.Fprintf(w, "\t%s %d(SI), %s\n", k.bcast, i*k.elem, aReg(i))
		for j := 0; j < k.nv; j++ {
			fmt.Fprintf(w, "\t%s %s, %s, %s\n", k.fma, bReg(j), aReg(i), acc(i, j))
		}
	}
	if k.strideB {
		fmt.Fprintf(w, "\tADDQ $%d, SI\n\tADDQ R10, DI\n\tDECQ CX\n\tJNZ %s_loop\n", k.mr*k.elem, k.name)
	} else {
		fmt.Fprintf(w, "\tADDQ $%d, SI\n\tADDQ $%d, DI\n\tDECQ CX\n\tJNZ %s_loop\n", k.mr*k.elem, nr*k.elem, k.name)
	}
	fmt.Fprintf(w, "%s_store:\n", k.name)
	fmt.Fprintf(w, "\tMOVQ DX, R9\n")
	for i := 0; i < k.mr; i++ {
		for j := 0; j < k.nv; j++ {
			fmt.Fprintf(w, "\t%s %s, %d(R9)\n", mov, acc(i, j), j*k.vec)
		}
		if i+1 < k.mr {
			fmt.Fprintf(w, "\tADDQ R8, R9\n")
		}
	}
	fmt.Fprintf(w, "\tVZEROUPPER\n\tRET\n\n")
}

// genDotAVX512 writes a 4x4 dot-product kernel for C = A * B^T when A and
// B are both stored with k contiguous:
//
//	func name(k int, a, b *[4]*T, out *[16]T)
//
// out[4*i+j] = sum over p < k of a[i][p] * b[j][p] for any k >= 0. Sixteen
// zmm accumulators collect vector partial sums; the k % vector-length tail
// is one iteration with masked (zeroing, fault-suppressing) loads; the
// accumulators are reduced horizontally at the end.
func genDotAVX512(w *bytes.Buffer, name string, elem int) {
	t := map[int]string{4: "float32", 8: "float64"}[elem]
	ps := map[int]string{4: "PS", 8: "PD"}[elem]
	fmt.Fprintf(w, "// func %s(k int, a, b *[4]*%s, out *[16]%s)\n", name, t, t)
	fmt.Fprintf(w, "// out[4*i+j] = dot(a[i][0:k], b[j][0:k]).\n")
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
	fmt.Fprintf(w, "\tMOVQ k+0(FP), CX\n\tMOVQ a+8(FP), AX\n\tMOVQ b+16(FP), BX\n")
	aRegs := []string{"R8", "R9", "R10", "R11"}
	bRegs := []string{"R12", "R13", "SI", "DI"}
	for i := 0; i < 4; i++ {
		fmt.Fprintf(w, "\tMOVQ %d(AX), %s\n", 8*i, aRegs[i])
		fmt.Fprintf(w, "\tMOVQ %d(BX), %s\n", 8*i, bRegs[i])
	}
	for i := 0; i < 16; i++ {
		fmt.Fprintf(w, "\tVPXORD Z%d, Z%d, Z%d\n", i, i, i)
	}
	vec := 64 / elem
	fmt.Fprintf(w, "\tMOVQ CX, BX\n\tANDQ $%d, BX\n", vec-1)
	fmt.Fprintf(w, "\tXORQ DX, DX\n\tSHRQ $%d, CX\n\tJZ %s_tail\n", map[int]int{4: 4, 8: 3}[elem], name)
	body := func(suffix, mask string) {
		for i := 0; i < 4; i++ {
			fmt.Fprintf(w, "\tVMOVUP%s%s (%s)(DX*1), %sZ%d\n", ps[1:], suffix, aRegs[i], mask, 16+i)
		}
		for j := 0; j < 4; j++ {
			fmt.Fprintf(w, "\tVMOVUP%s%s (%s)(DX*1), %sZ%d\n", ps[1:], suffix, bRegs[j], mask, 20+j)
		}
		for i := 0; i < 4; i++ {
			for j := 0; j < 4; j++ {
				fmt.Fprintf(w, "\tVFMADD231%s Z%d, Z%d, Z%d\n", ps, 20+j, 16+i, 4*i+j)
			}
		}
	}
	fmt.Fprintf(w, "%s_loop:\n", name)
	body("", "")
	fmt.Fprintf(w, "\tADDQ $64, DX\n\tDECQ CX\n\tJNZ %s_loop\n", name)
	fmt.Fprintf(w, "%s_tail:\n\tTESTQ BX, BX\n\tJZ %s_reduce\n", name, name)
	fmt.Fprintf(w, "\tMOVQ BX, CX\n\tMOVL $1, AX\n\tSHLL CX, AX\n\tDECL AX\n\tKMOVW AX, K1\n")
	body(".Z", "K1, ")
	fmt.Fprintf(w, "%s_reduce:\n\tMOVQ out+24(FP), AX\n", name)
	for i := 0; i < 16; i++ {
		z := fmt.Sprintf("Z%d", i)
		// Swap 256-bit halves, then adjacent 128-bit lanes, then within lanes.
		fmt.Fprintf(w, "\tVSHUFF64X2 $0x4E, %s, %s, Z24\n\tVADD%s Z24, %s, %s\n", z, z, ps, z, z)
		fmt.Fprintf(w, "\tVSHUFF64X2 $0xB1, %s, %s, Z24\n\tVADD%s Z24, %s, %s\n", z, z, ps, z, z)
		if elem == 4 {
			fmt.Fprintf(w, "\tVPERMILPS $0x4E, %s, Z24\n\tVADDPS Z24, %s, %s\n", z, z, z)
			fmt.Fprintf(w, "\tVPERMILPS $0xB1, %s, Z24\n\tVADDPS Z24, %s, %s\n", z, z, z)
			fmt.Fprintf(w, "\tVMOVSS X%d, %d(AX)\n", i, 4*i)
		} else {
			fmt.Fprintf(w, "\tVPERMILPD $0x55, %s, Z24\n\tVADDPD Z24, %s, %s\n", z, z, z)
			fmt.Fprintf(w, "\tVMOVSD X%d, %d(AX)\n", i, 8*i)
		}
	}
	fmt.Fprintf(w, "\tVZEROUPPER\n\tRET\n\n")
}

// genDotAVX2 writes the 4x4 dot-product kernel of genDotAVX512 for AVX2:
// two passes over k (rows 0-1, then rows 2-3) with 8 ymm accumulators each;
// the k tail is one iteration of VMASKMOVPS/PD loads (fault-suppressing)
// under a mask computed from k % vector-length.
func genDotAVX2(w *bytes.Buffer, name string, elem int) {
	t := map[int]string{4: "float32", 8: "float64"}[elem]
	ps := map[int]string{4: "PS", 8: "PD"}[elem]
	vec := 32 / elem
	fmt.Fprintf(w, "// func %s(k int, a, b *[4]*%s, out *[16]%s)\n", name, t, t)
	fmt.Fprintf(w, "// out[4*i+j] = dot(a[i][0:k], b[j][0:k]).\n")
	fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
	fmt.Fprintf(w, "\tMOVQ a+8(FP), AX\n\tMOVQ b+16(FP), BX\n")
	aRegs := []string{"R8", "R9", "R10", "R11"}
	bRegs := []string{"R12", "R13", "SI", "DI"}
	for i := 0; i < 4; i++ {
		fmt.Fprintf(w, "\tMOVQ %d(AX), %s\n", 8*i, aRegs[i])
		fmt.Fprintf(w, "\tMOVQ %d(BX), %s\n", 8*i, bRegs[i])
	}
	// Tail mask in Y14: lane l is all ones when l < k % vec.
	fmt.Fprintf(w, "\tMOVQ k+0(FP), BX\n\tANDQ $%d, BX\n", vec-1)
	if elem == 4 {
		fmt.Fprintf(w, "\tVMOVQ BX, X14\n\tVPBROADCASTD X14, Y14\n\tVMOVDQU dotIdx32<>(SB), Y15\n\tVPCMPGTD Y15, Y14, Y14\n")
	} else {
		fmt.Fprintf(w, "\tVMOVQ BX, X14\n\tVPBROADCASTQ X14, Y14\n\tVMOVDQU dotIdx64<>(SB), Y15\n\tVPCMPGTQ Y15, Y14, Y14\n")
	}
	fmt.Fprintf(w, "\tMOVQ out+24(FP), AX\n")
	for pass := 0; pass < 2; pass++ {
		lbl := fmt.Sprintf("%s_p%d", name, pass)
		for i := 0; i < 8; i++ {
			fmt.Fprintf(w, "\tVXORPS Y%d, Y%d, Y%d\n", i, i, i)
		}
		fmt.Fprintf(w, "\tMOVQ k+0(FP), CX\n\tXORQ DX, DX\n\tSHRQ $%d, CX\n\tJZ %s_tail\n", map[int]int{4: 3, 8: 2}[elem], lbl)
		body := func(masked bool) {
			for r := 0; r < 2; r++ {
				if masked {
					fmt.Fprintf(w, "\tVMASKMOV%s (%s)(DX*1), Y14, Y%d\n", ps, aRegs[2*pass+r], 8+r)
				} else {
					fmt.Fprintf(w, "\tVMOVUPS (%s)(DX*1), Y%d\n", aRegs[2*pass+r], 8+r)
				}
			}
			for j := 0; j < 4; j++ {
				if masked {
					fmt.Fprintf(w, "\tVMASKMOV%s (%s)(DX*1), Y14, Y%d\n", ps, bRegs[j], 10+j)
				} else {
					fmt.Fprintf(w, "\tVMOVUPS (%s)(DX*1), Y%d\n", bRegs[j], 10+j)
				}
			}
			for r := 0; r < 2; r++ {
				for j := 0; j < 4; j++ {
					fmt.Fprintf(w, "\tVFMADD231%s Y%d, Y%d, Y%d\n", ps, 10+j, 8+r, 4*r+j)
				}
			}
		}
		fmt.Fprintf(w, "%s_loop:\n", lbl)
		body(false)
		fmt.Fprintf(w, "\tADDQ $32, DX\n\tDECQ CX\n\tJNZ %s_loop\n", lbl)
		fmt.Fprintf(w, "%s_tail:\n\tTESTQ BX, BX\n\tJZ %s_reduce\n", lbl, lbl)
		body(true)
		fmt.Fprintf(w, "%s_reduce:\n", lbl)
		for acc := 0; acc < 8; acc++ {
			idx := (2*pass+acc/4)*4 + acc%4
			fmt.Fprintf(w, "\tVEXTRACTF128 $1, Y%d, X15\n\tVADD%s X15, X%d, X%d\n", acc, ps, acc, acc)
			if elem == 4 {
				fmt.Fprintf(w, "\tVPERMILPS $0x4E, X%d, X15\n\tVADDPS X15, X%d, X%d\n", acc, acc, acc)
				fmt.Fprintf(w, "\tVPERMILPS $0xB1, X%d, X15\n\tVADDPS X15, X%d, X%d\n", acc, acc, acc)
				fmt.Fprintf(w, "\tVMOVSS X%d, %d(AX)\n", acc, 4*idx)
			} else {
				fmt.Fprintf(w, "\tVPERMILPD $1, X%d, X15\n\tVADDPD X15, X%d, X%d\n", acc, acc, acc)
				fmt.Fprintf(w, "\tVMOVSD X%d, %d(AX)\n", acc, 8*idx)
			}
		}
	}
	fmt.Fprintf(w, "\tVZEROUPPER\n\tRET\n\n")
}

const dotIdxData = `// Lane indices for the AVX2 dot kernels' tail masks.
DATA dotIdx32<>+0(SB)/4, $0
DATA dotIdx32<>+4(SB)/4, $1
DATA dotIdx32<>+8(SB)/4, $2
DATA dotIdx32<>+12(SB)/4, $3
DATA dotIdx32<>+16(SB)/4, $4
DATA dotIdx32<>+20(SB)/4, $5
DATA dotIdx32<>+24(SB)/4, $6
DATA dotIdx32<>+28(SB)/4, $7
GLOBL dotIdx32<>(SB), RODATA|NOPTR, $32
DATA dotIdx64<>+0(SB)/8, $0
DATA dotIdx64<>+8(SB)/8, $1
DATA dotIdx64<>+16(SB)/8, $2
DATA dotIdx64<>+24(SB)/8, $3
GLOBL dotIdx64<>(SB), RODATA|NOPTR, $32

`

type armKernel struct {
	name    string
	elem    int // 4 or 8
	mr      int
	strideB bool // B read in place with row stride ldb (extra argument)
}

// genARM writes an MR x 8 (float32) or MR x 4 (float64) NEON kernel: two
// 128-bit accumulators per row, A values broadcast with LD1R.
func genARM(w *bytes.Buffer, k armKernel) {
	arr := map[int]string{4: "S4", 8: "D2"}[k.elem]
	nr := 2 * 16 / k.elem
	if 2*k.mr+3 > 32 {
		panic("too many registers")
	}
	acc := func(i, j int) string { return fmt.Sprintf("V%d.%s", 2*i+j, arr) }
	b0 := fmt.Sprintf("V%d.%s", 2*k.mr, arr)
	b1 := fmt.Sprintf("V%d.%s", 2*k.mr+1, arr)
	av := fmt.Sprintf("V%d.%s", 2*k.mr+2, arr)
	tname := map[int]string{4: "float32", 8: "float64"}[k.elem]
	if k.strideB {
		fmt.Fprintf(w, "// func %s(kc int, a, b, c *%s, ldc int, load bool, ldb int)\n", k.name, tname)
		fmt.Fprintf(w, "// C[0:%d, 0:%d] (+)= A panel (kc x %d, packed by column) * B[0:kc, 0:%d] (row stride ldb);\n", k.mr, nr, k.mr, nr)
		fmt.Fprintf(w, "// C is read only when load is true.\n")
		fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-56\n", k.name)
		fmt.Fprintf(w, "\tMOVD ldb+48(FP), R7\n\tLSL $%d, R7, R7\n", map[int]int{4: 2, 8: 3}[k.elem])
	} else {
		fmt.Fprintf(w, "// func %s(kc int, a, b, c *%s, ldc int, load bool)\n", k.name, tname)
		fmt.Fprintf(w, "// C[0:%d, 0:%d] (+)= A panel (kc x %d, packed by column) * B panel (kc x %d);\n", k.mr, nr, k.mr, nr)
		fmt.Fprintf(w, "// C is read only when load is true.\n")
		fmt.Fprintf(w, "TEXT ·%s(SB), NOSPLIT, $0-41\n", k.name)
	}
	fmt.Fprintf(w, "\tMOVD kc+0(FP), R2\n\tMOVD a+8(FP), R0\n\tMOVD b+16(FP), R1\n\tMOVD c+24(FP), R3\n\tMOVD ldc+32(FP), R4\n")
	fmt.Fprintf(w, "\tLSL $%d, R4, R4\n", map[int]int{4: 2, 8: 3}[k.elem])
	fmt.Fprintf(w, "\tMOVBU load+40(FP), R6\n\tCBNZ R6, %s_load\n", k.name)
	for i := 0; i < k.mr; i++ {
		for j := 0; j < 2; j++ {
			r := fmt.Sprintf("V%d.B16", 2*i+j)
			fmt.Fprintf(w, "\tVEOR %s, %s, %s\n", r, r, r)
		}
	}
	fmt.Fprintf(w, "\tB %s_start\n", k.name)
	fmt.Fprintf(w, "%s_load:\n", k.name)
	fmt.Fprintf(w, "\tMOVD R3, R5\n")
	for i := 0; i < k.mr; i++ {
		fmt.Fprintf(w, "\tVLD1 (R5), [%s, %s]\n", acc(i, 0), acc(i, 1))
		if i+1 < k.mr {
			fmt.Fprintf(w, "\tADD R4, R5, R5\n")
		}
	}
	fmt.Fprintf(w, "%s_start:\n", k.name)
	fmt.Fprintf(w, "\tCBZ R2, %s_store\n", k.name)
	fmt.Fprintf(w, "%s_loop:\n", k.name)
	if k.strideB {
		fmt.Fprintf(w, "\tVLD1 (R1), [%s, %s]\n\tADD R7, R1, R1\n", b0, b1)
	} else {
		fmt.Fprintf(w, "\tVLD1.P 32(R1), [%s, %s]\n", b0, b1)
	}
	for i := 0; i < k.mr; i++ {
		fmt.Fprintf(w, "\tVLD1R.P %d(R0), [%s]\n", k.elem, av)
		fmt.Fprintf(w, "\tVFMLA %s, %s, %s\n", b0, av, acc(i, 0))
		fmt.Fprintf(w, "\tVFMLA %s, %s, %s\n", b1, av, acc(i, 1))
	}
	fmt.Fprintf(w, "\tSUBS $1, R2, R2\n\tBNE %s_loop\n", k.name)
	fmt.Fprintf(w, "%s_store:\n", k.name)
	fmt.Fprintf(w, "\tMOVD R3, R5\n")
	for i := 0; i < k.mr; i++ {
		fmt.Fprintf(w, "\tVST1 [%s, %s], (R5)\n", acc(i, 0), acc(i, 1))
		if i+1 < k.mr {
			fmt.Fprintf(w, "\tADD R4, R5, R5\n")
		}
	}
	fmt.Fprintf(w, "\tRET\n\n")
}

const header = "// Code generated by gen_asm.go; DO NOT EDIT.\n\n//go:build !purego\n\n#include \"textflag.h\"\n\n"

func main() {
	out := flag.String("out", ".", "directory to write the assembly files to")
	flag.Parse()
	// Write next to the package sources only (go generate runs here), unless told otherwise.
	if _, err := os.Stat("fgemm.go"); *out == "." && err != nil {
		fmt.Fprintln(os.Stderr, "gen_asm: run in the fgemm directory (go generate)")
		os.Exit(1)
	}
	var x bytes.Buffer
	x.WriteString(header)
	genX86(&x, x86Kernel{name: "kernS8x48AVX512", elem: 4, vec: 64, reg: "Z", mr: 8, nv: 3, fma: "VFMADD231PS", bcast: "VBROADCASTSS"})
	genX86(&x, x86Kernel{name: "kernD8x24AVX512", elem: 8, vec: 64, reg: "Z", mr: 8, nv: 3, fma: "VFMADD231PD", bcast: "VBROADCASTSD"})
	genX86(&x, x86Kernel{name: "kernS4x24AVX2", elem: 4, vec: 32, reg: "Y", mr: 4, nv: 3, fma: "VFMADD231PS", bcast: "VBROADCASTSS"})
	genX86(&x, x86Kernel{name: "kernD4x12AVX2", elem: 8, vec: 32, reg: "Y", mr: 4, nv: 3, fma: "VFMADD231PD", bcast: "VBROADCASTSD"})
	genX86(&x, x86Kernel{name: "kernS8x48AVX512B", elem: 4, vec: 64, reg: "Z", mr: 8, nv: 3, fma: "VFMADD231PS", bcast: "VBROADCASTSS", strideB: true})
	genX86(&x, x86Kernel{name: "kernD8x24AVX512B", elem: 8, vec: 64, reg: "Z", mr: 8, nv: 3, fma: "VFMADD231PD", bcast: "VBROADCASTSD", strideB: true})
	genX86(&x, x86Kernel{name: "kernS4x24AVX2B", elem: 4, vec: 32, reg: "Y", mr: 4, nv: 3, fma: "VFMADD231PS", bcast: "VBROADCASTSS", strideB: true})
	genX86(&x, x86Kernel{name: "kernD4x12AVX2B", elem: 8, vec: 32, reg: "Y", mr: 4, nv: 3, fma: "VFMADD231PD", bcast: "VBROADCASTSD", strideB: true})
	genDotAVX512(&x, "dotS4x4AVX512", 4)
	genDotAVX512(&x, "dotD4x4AVX512", 8)
	x.WriteString(dotIdxData)
	genDotAVX2(&x, "dotS4x4AVX2", 4)
	genDotAVX2(&x, "dotD4x4AVX2", 8)
	must(writeAtomic(filepath.Join(*out, "kernels_amd64.s"), x.Bytes()))

	var a bytes.Buffer
	a.WriteString(header)
	genARM(&a, armKernel{name: "kernS8x8NEON", elem: 4, mr: 8})
	genARM(&a, armKernel{name: "kernD8x4NEON", elem: 8, mr: 8})
	genARM(&a, armKernel{name: "kernS8x8NEONB", elem: 4, mr: 8, strideB: true})
	genARM(&a, armKernel{name: "kernD8x4NEONB", elem: 8, mr: 8, strideB: true})
	must(writeAtomic(filepath.Join(*out, "kernels_arm64.s"), a.Bytes()))
}

// writeAtomic writes data to a temporary file next to name and renames it over name, so that an
// interrupted run never leaves a truncated assembly file behind.
func writeAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, name)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen_asm:", err)
		os.Exit(1)
	}
}
