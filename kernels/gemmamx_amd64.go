//go:build !purego

package kernels

import (
	"unsafe"

	"github.com/qatgo/qatgo/quant"
)

//go:noescape
func amxEpiGemm32(acc *int32, ldc, rows int, off, roff *int32, dst *int32, ldd, nt int, mask uint64)

//go:noescape
func amxEpiGemm(acc *int32, ldc, rows int, off, roff *int32, epi *int64, zp, lo, hi int64, dst *int8, ldd, nt int, mask uint64)

// amxGemmMinRows and amxGemmMinRowsCopy are the fewest rows for which the AMX GEMM runs, with
// the rows read in place (K whole 64-byte chunks) and from the zero-padded copy: below them the
// VNNI kernels were faster (BenchmarkGEMMSmallM, N = 10: at K = 3136 AMX took 272 against 540
// ns per row for 4 rows; at K = 784, copied, 154 against 94 for 8 rows, 94 against 90 for 16, 73
// against 88 for 24).
// (amxGemmMinK, the shortest K, is in convamx.go: PackInt8 sizes the panel's slack by it.)
const (
	amxGemmMinRows     = 4
	amxGemmMinRowsCopy = 24
	// amxGemmColTiles bounds the channel tiles of one tile-kernel call, and so the int32 block
	// (32 rows by 256 channels, 32 KB) whatever N is (an LM head's vocabulary).
	amxGemmColTiles = 16
)

// amxGemmCfg configures all eight tiles as 16 rows of 64 bytes: tmm0-3 the C tiles, tmm4-5 the
// A tiles (16 rows of one 64-byte K chunk), tmm6-7 the B tiles (16 groups of 4 K values of 16
// channels).
var amxGemmCfg = func() (c [64]byte) {
	c[0] = 1
	for t := 0; t < 8; t++ {
		c[16+2*t], c[48+t] = 64, 16
	}
	return c
}()

func init() {
	if hasAMX {
		avx512Kernels.gemmTiles = amxGemm
	}
}

// amxGemm is simdKernels.gemm on AMX tiles: the activations (signed) times the panel (w+128,
// unsigned) with TDPBSUD, K in chunks of 64 bytes, 32 rows and up to amxGemmColTiles*16 columns
// of [j0, j1) per call of the tile kernel into an int32 block, then amxEpiGemm adds the column
// and row offsets (bias, -128 times the row sums) and requantizes with the convolutions'
// epilogue table (amxEpiGemm32 adds them for int32 results). Rows are read in place when K is
// whole chunks (a last block of fewer than 32 rows with tiles configured to those rows), else
// block by block from a zero-padded copy of 32 rows, so that no tile reads past the
// activations; the panel has room for the chunk that runs past its last tile. It reports false
// where AMX is off, K is below amxGemmMinK or m below amxGemmMinRows (amxGemmMinRowsCopy when
// the rows are copied).
func amxGemm(k *simdKernels, sc *simdScratch, dst32 []int32, dst8 []int8, ldd int, a []int8, lda, m int, w *PackedInt8, off []int32, rq *Requant, j0, j1 int) bool {
	kc := (w.kp + 63) / 64 // K chunks
	k64 := kc * 64
	if !hasAMX || w.k < amxGemmMinK || m < amxGemmMinRows || w.k != k64 && m < amxGemmMinRowsCopy {
		return false
	}
	nc := j1 - j0
	nt := (nc + panelN - 1) / panelN
	mp := (m + 31) &^ 31
	sc.roff = growI32(sc.roff, mp)
	roff := sc.roff
	k.rowOffsets(roff, a, lda, m, w.k)
	// Rows in place when K is whole chunks (the last block of fewer than 32 rows with tiles of
	// fewer rows, see below), else each block of 32 rows from a zero-padded copy.
	inPlace := w.k == k64
	if !inPlace {
		sc.apad = growI8(sc.apad, 32*k64)
	}
	var ep []int64
	if dst8 != nil {
		sc.ep = growI64(sc.ep, nt*epiTile)
		ep = sc.ep
	}
	for j := 0; j < len(ep)/epiTile*panelN; j++ {
		m0, total := int64(0), int64(1)
		if j < nc {
			m0 = int64(rq.M0[j0+j])
			total = int64(31 - min(max(rq.Shift[j0+j], quant.MinShift), quant.MaxShift))
		}
		setEpi(ep, j, m0, 1<<(total-1), total)
	}
	// The sums of 32 rows by up to amxGemmColTiles channel tiles at a time.
	bt := min(nt, amxGemmColTiles)
	ldc := bt * panelN * 4
	sc.acc = growI32(sc.acc, 32*bt*panelN)
	acc := sc.acc
	ts := w.kp * panelN
	var zp, lo, hi int64
	if rq != nil {
		zp, lo, hi = int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max)
	}
	for r0 := 0; r0 < m; r0 += 32 {
		rows := min(32, m-r0)
		ap, ald := unsafe.Pointer(nil), k64
		if inPlace {
			ap, ald = unsafe.Pointer(&a[r0*lda]), lda
		} else {
			clear(sc.apad)
			for i := 0; i < rows; i++ {
				copy(sc.apad[i*k64:], a[(r0+i)*lda:(r0+i)*lda+w.k])
			}
			ap = unsafe.Pointer(&sc.apad[0])
		}
		cfg, a1 := &amxGemmCfg, 16*ald
		if rows < 32 && inPlace {
			// The tiles hold only the rows there are: the first M tile min(16, rows), the second
			// the rest, or, for at most 16 rows, the first one again (its results unused).
			r1, r2 := min(16, rows), rows-16
			if r2 <= 0 {
				r2, a1 = r1, 0
			}
			part := amxGemmCfg
			part[48+0], part[48+1], part[48+4] = byte(r1), byte(r1), byte(r1)
			part[48+2], part[48+3], part[48+5] = byte(r2), byte(r2), byte(r2)
			cfg = &part
		}
		for t0 := 0; t0 < nt; t0 += bt {
			tn := min(bt, nt-t0)
			c0 := t0 * panelN
			cols := min(tn*panelN, nc-c0)
			mask := uint64(1)<<(cols-(tn-1)*panelN) - 1
			amxConv(&cfg[0], (*uint8)(ap), ald, 0, &w.panel[(j0/panelN+t0)*ts], ts, 16*64, 1, kc, 64, &acc[0], ldc, 1, tn, a1, true)
			if dst8 == nil {
				amxEpiGemm32(&acc[0], ldc, rows, &off[c0], &roff[r0], &dst32[r0*ldd+c0], 4*ldd, tn, mask&0xffff)
				continue
			}
			amxEpiGemm(&acc[0], ldc, rows, &off[c0], &roff[r0], &ep[t0*epiTile], zp, lo, hi, &dst8[r0*ldd+c0], ldd, tn, mask)
		}
	}
	return true
}
