//go:build !purego

package kernels

import (
	"os"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Assembly in convamx_amd64.s.

//go:noescape
func amxConv(cfg *byte, a *uint8, lda, kstep int, w *int8, wts, wq, kh, chunks, cb int, acc *int32, ldc, mpairs, nt, a1 int, sa bool)

//go:noescape
func amxEpiPool(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)

//go:noescape
func amxEpiPoolSat(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)

//go:noescape
func amxEpiRow(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)

//go:noescape
func amxEpiRowSat(acc *int32, ldc, rs, pstep, rstep, oh, ow int, off *int32, epi *int64, zp, lo, hi int64, dst *int8, nt int)

// hasAMX reports that the AMX kernels may run on the avx512vnni path: the CPU has AMX-INT8,
// QATGO_AMX is not 0 and the OS let this process use the tile registers (amxEnable). Tests
// clear it to run the VNNI kernels on the same shapes.
var hasAMX = cpu.X86.HasAMXTile && cpu.X86.HasAMXInt8 && cpu.X86.HasAVX512VNNI && os.Getenv("QATGO_AMX") != "0" && amxEnable()

// amxOn is AMX: the AMX kernels may run and the avx512vnni path, which runs them, is selected.
func amxOn() bool { return hasAMX && Path() == "avx512vnni" }

// convPoolAMX is convPoolVNNI for convolutions with an AMX plan: per image the u8 padded image,
// one amxConv call for all raster rows and channels, then one epilogue call (amxEpi*).
func convPoolAMX(f *FusedConv, dst, src []int8, batch int, shifted bool, sc *FusedScratch) {
	s, p := f.s, f.amx
	c, n := s.InC, s.OutC
	pw := s.InW + s.PadLeft + s.PadRight
	pad := f.padU8(sc)
	pu := unsafe.Slice((*uint8)(unsafe.Pointer(&pad[0])), len(pad))
	sc.acc = fcGrow32(sc.acc, p.mpairs*32*n)
	zp, lo, hi := int64(f.rq.ZeroPoint), int64(f.rq.Min), int64(f.rq.Max)
	x := uint64(0x80)
	if shifted {
		x = 0
	}
	top := (s.PadTop*pw + s.PadLeft) * c
	inImg, outImg := s.InH*s.InW*c, f.oh*f.ow*n
	ldc := 4 * n   // bytes per raster row of sums
	rs := pw * ldc // bytes per conv row of sums
	kstep := pw*c - p.chunks*p.cb
	pstep, rstep := ldc, rs
	if f.pool {
		pstep, rstep = 2*ldc, 2*rs
	}
	epi, epilogue := f.epi, amxEpiRow
	switch {
	case f.pool && f.epiSat != nil:
		epi, epilogue = f.epiSat, amxEpiPoolSat
	case f.pool:
		epilogue = amxEpiPool
	case f.epiSat != nil:
		epi, epilogue = f.epiSat, amxEpiRowSat
	}
	for b := 0; b < batch; b++ {
		xorRows512(&pad[top], pw*c, &src[b*inImg], s.InW*c, s.InH, s.InW*c, x)
		amxConv(&p.cfg[0], &pu[0], c, kstep, &f.panel[0], f.tileStride, 16*p.cb, s.KH, p.chunks, p.cb, &sc.acc[0], ldc, p.mpairs, n/16, 16*c, false)
		epilogue(&sc.acc[0], ldc, rs, pstep, rstep, f.oh, f.ow, &f.off[0], &epi[0], zp, lo, hi, &dst[b*outImg], n/16)
	}
}

// peakTDPBUSD runs n iterations of four independent register-only TDPBUSD with the tile
// configuration cfg (BenchmarkPeakTDPBUSD).
//
//go:noescape
func peakTDPBUSD(cfg *byte, n int)
