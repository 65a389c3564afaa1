package kernels

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/qatgo/qatgo/quant"
)

// FusedConv is a convolution (Conv2DInt8) fused with its requantization epilogue and, optionally,
// a following 2x2 max pool with stride 2 and no padding (the conv -> ReLU -> pool block of small
// CNNs). It computes, per output row, only the accumulators that the row needs (no full-size
// intermediate tensor) and requantizes after pooling: the requantization is monotone in the
// accumulator (non-negative multipliers), so the maximum of the requantized values equals the
// requantization of the maximum accumulator, and the result is bit-identical to Conv2DInt8
// followed by the pool.
//
// A FusedConv is immutable after NewFusedConv and safe for concurrent use; each goroutine needs
// its own FusedScratch.
type FusedConv struct {
	s      ConvShape
	pool   bool
	inZero int8
	w      *PackedInt8
	bias   []int32 // OutC values (zeros if the caller passed nil)
	rq     Requant
	oh, ow int // output height and width (pooled if pool)

	// SIMD layout (amd64): ng K groups of 4 bytes per kernel row, signed weights in tiles of
	// panelN channels [tile][kh][ng][panelN][4]; off = bias - 128*sum(w) (the activations are
	// read as u8 = a+128); M0, Shift padded to whole tiles.
	ng         int
	panel      []int8
	off        []int32
	m0, shift  []int32
	tileStride int
	// epi holds the AVX-512 epilogue per tile of panelN channels (epiTile values): the
	// multipliers M0, the rounding terms 1<<(30-Shift) and the right shifts 31-Shift, each
	// as int64 and each as two vectors of 8: the even channels 0, 2, ..., 14 of the tile, then
	// the odd ones (the kernels multiply the even and odd int32 lanes of an accumulator with
	// VPMULDQ).
	epi []int64
	// epiSat is epi with the zero point folded into the rounding terms (plus zp << (31-Shift)),
	// for the AVX-512 Sat kernels; nil unless satEligible.
	epiSat []int64
	// One input channel and 8 outputs (convC1Eligible): the kernel rows as dwords [kh][8]
	// (weights zero-padded to 4 bytes), the offsets as off, and the epilogue (M0 x8, rounding
	// x8, right shift x8).
	c1w   []int32
	c1off []int32
	c1epi []int64
	// One input channel and 16 outputs (convC16Eligible, AVX-512 VNNI): the kernel rows as
	// [kh][k][16] dwords with channel 8k+q in dwords 2q and 2q+1 (weights zero-padded to 4
	// bytes), the offsets in the same [k][16] layout, and per k the epilogue (M0 x8, rounding
	// term plus zero point << shift x8, right shift x8).
	c16w   []int32
	c16off []int32
	c16epi []int64
	// amx is the AMX plan (amxEligible; used where the CPU and OS allow AMX-INT8), or nil.
	amx *amxPlan
	// AVX2 / AVX-VNNI layouts, in groups of 8 channels: VNNI [g8][kh][ng][8][4] signed bytes
	// (off as above); AVX2 [g8][kh][ng2][8][2] int16 pairs with ng2 = ceil(KW*InC/2), offsets
	// the plain bias (int16 activations, no u8 shift).
	panel8, panel16   []int8
	stride8, stride16 int
	ng2               int
	bias16            []int32

	wino atomic.Pointer[winoWeights] // portable Winograd weights, built on first use (winograd.go)
}

// FusedScratch holds the per-goroutine buffers of FusedConv.Run; the zero value is ready to use
// (buffers grow on first use and are reused afterwards).
type FusedScratch struct {
	pad  []int8  // zero-point-padded image (u8 on the SIMD path)
	acc  []int32 // accumulators of up to two conv rows (portable path)
	conv []int8  // one unpooled conv output image (paths without a fused kernel) or one row of patches (portable)
	col  []int8  // Conv2DInt8 scratch (paths without a fused kernel)
	in   []int8  // RunShifted's converted input (paths without a fused kernel)
	wino []int64 // transformed input and product tiles of the portable Winograd path
	prep []quant.PreparedMultiplier
}

// NewFusedConv prepares the fused op for shape s (pool: a 2x2 stride-2 max pool follows, whose
// output is floor(OutH/2) x floor(OutW/2)), input zero point inZero (padding reads as inZero),
// weights w (OutC x KH*KW*InC, as for Conv2DInt8), bias (folded as for Conv2DInt8; may be nil)
// and epilogue rq. The pool must not clamp beyond rq (fold its activation into rq.Min/Max).
func NewFusedConv(s ConvShape, pool bool, inZero int8, w *PackedInt8, bias []int32, rq *Requant) (*FusedConv, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if w == nil || w.n != s.OutC || w.k != s.K() {
		return nil, fmt.Errorf("kernels: NewFusedConv: weights must be OutC x KH*KW*InC = %d x %d", s.OutC, s.K())
	}
	if bias != nil && len(bias) != s.OutC {
		return nil, fmt.Errorf("kernels: NewFusedConv: len(bias) = %d, want OutC = %d", len(bias), s.OutC)
	}
	if rq == nil || len(rq.M0) != s.OutC || len(rq.Shift) != s.OutC || rq.Min > rq.Max || rq.Min < -128 || rq.Max > 127 {
		return nil, fmt.Errorf("kernels: NewFusedConv: requantization parameters do not match OutC = %d", s.OutC)
	}
	oh, ow := s.OutH(), s.OutW()
	if pool {
		oh, ow = oh/2, ow/2
		if oh < 1 || ow < 1 {
			return nil, fmt.Errorf("kernels: NewFusedConv: conv output %dx%d too small for a 2x2 pool", s.OutH(), s.OutW())
		}
	}
	f := &FusedConv{s: s, pool: pool, inZero: inZero, w: w, oh: oh, ow: ow,
		rq: Requant{M0: append([]int32(nil), rq.M0...), Shift: append([]int32(nil), rq.Shift...), ZeroPoint: rq.ZeroPoint, Min: rq.Min, Max: rq.Max}}
	for c := range f.rq.M0 {
		if !(quant.Multiplier{M0: f.rq.M0[c], Shift: f.rq.Shift[c]}).Valid() {
			return nil, fmt.Errorf("kernels: NewFusedConv: invalid multiplier (M0=%d, Shift=%d) for channel %d", f.rq.M0[c], f.rq.Shift[c], c)
		}
	}
	f.bias = make([]int32, s.OutC)
	copy(f.bias, bias)
	f.prepareSIMD()
	return f, nil
}

// convC1Eligible reports whether f fits the one-input-channel kernel (vnniConvC1Pool): one input
// channel, a kernel at most 4 wide, stride 1, a fused pool and 8 output channels (16 channels
// have their own kernel, see convC16Eligible).
func (f *FusedConv) convC1Eligible() bool {
	s := f.s
	return s.InC == 1 && s.KW <= 4 && s.StrideH == 1 && s.StrideW == 1 && f.pool && s.OutC == 8
}

// convC16Eligible reports whether f fits vnniConvC16Pool: one input channel, a kernel at most 4
// wide, stride 1, a fused pool, 16 output channels, and right shifts 31-Shift of at most 53 (the
// kernel adds the zero point shifted left by the right shift to the 64-bit rounding term:
// |acc*M0| < 2^62 and that term stays below 2^61, so the sum cannot overflow).
func (f *FusedConv) convC16Eligible() bool {
	s := f.s
	if s.InC != 1 || s.KW > 4 || s.StrideH != 1 || s.StrideW != 1 || !f.pool || s.OutC != 16 {
		return false
	}
	for _, sh := range f.rq.Shift {
		if 31-sh > 53 {
			return false
		}
	}
	return true
}

// satEligible reports whether the AVX-512 Sat kernels serve f: clamp bounds -128 and 127 (the
// saturating narrow to int8 is the clamp) and right shifts of at most 53 (the zero point folded
// into the 64-bit rounding term cannot overflow, see convC16Eligible).
func (f *FusedConv) satEligible() bool {
	if f.rq.Min != -128 || f.rq.Max != 127 {
		return false
	}
	for _, sh := range f.rq.Shift {
		if 31-sh > 53 {
			return false
		}
	}
	return true
}

// epiTile is the number of int64 epilogue constants per tile of FusedConv.epi.
const epiTile = 3 * panelN

// setEpi stores channel j's multiplier, rounding term and right shift in the epilogue table ep
// (epiTile values per tile of panelN channels: each constant as 8 even then 8 odd channels).
func setEpi(ep []int64, j int, m0, round, shift int64) {
	c := j % panelN
	e := ep[j/panelN*epiTile+c%2*8+c/2:]
	e[0], e[panelN], e[2*panelN] = m0, round, shift
}

// prepareSIMD builds the weight panel and padded epilogue constants of the SIMD kernels.
func (f *FusedConv) prepareSIMD() {
	s := f.s
	kwc := s.KW * s.InC
	f.ng = (kwc + 3) / 4
	nt := (s.OutC + panelN - 1) / panelN
	f.tileStride = s.KH * f.ng * 4 * panelN
	f.panel = alignedInt8(nt * f.tileStride)
	f.off = alignedInt32(nt * panelN)
	f.m0 = make([]int32, nt*panelN)
	f.shift = make([]int32, nt*panelN)
	for j := 0; j < s.OutC; j++ {
		t, c := j/panelN, j%panelN
		var sum int32
		for h := 0; h < s.KH; h++ {
			for b := 0; b < kwc; b++ {
				v := f.w.at(j, h*kwc+b)
				sum += int32(v)
				f.panel[t*f.tileStride+((h*f.ng+b/4)*panelN+c)*4+b%4] = v
			}
		}
		f.off[j] = f.bias[j] - 128*sum
		f.m0[j], f.shift[j] = f.rq.M0[j], f.rq.Shift[j]
	}
	if f.convC1Eligible() {
		f.c1w = make([]int32, s.KH*8)
		f.c1off = make([]int32, 8)
		f.c1epi = make([]int64, 24)
		for c := 0; c < 8; c++ {
			for h := 0; h < s.KH; h++ {
				var d uint32
				for x := 0; x < s.KW; x++ {
					d |= uint32(uint8(f.w.at(c, h*s.KW+x))) << (8 * x)
				}
				f.c1w[h*8+c] = int32(d)
			}
			f.c1off[c] = f.off[c]
			total := 31 - int64(f.rq.Shift[c])
			f.c1epi[c], f.c1epi[8+c], f.c1epi[16+c] = int64(f.rq.M0[c]), 1<<(total-1), total
		}
	}
	if f.convC16Eligible() {
		f.c16w = make([]int32, s.KH*32)
		f.c16off = make([]int32, 32)
		f.c16epi = make([]int64, 48)
		for j := 0; j < 16; j++ {
			k, q := j/8, j%8
			for h := 0; h < s.KH; h++ {
				var d uint32
				for x := 0; x < s.KW; x++ {
					d |= uint32(uint8(f.w.at(j, h*s.KW+x))) << (8 * x)
				}
				f.c16w[(h*2+k)*16+2*q], f.c16w[(h*2+k)*16+2*q+1] = int32(d), int32(d)
			}
			f.c16off[k*16+2*q], f.c16off[k*16+2*q+1] = f.off[j], f.off[j]
			total := 31 - int64(f.rq.Shift[j])
			e := f.c16epi[k*24:]
			e[q], e[8+q], e[16+q] = int64(f.rq.M0[j]), 1<<(total-1)+int64(f.rq.ZeroPoint)<<total, total
		}
	}
	f.epi = alignedInt64(nt * epiTile)
	if f.satEligible() {
		f.epiSat = alignedInt64(nt * epiTile)
	}
	for j := 0; j < s.OutC; j++ {
		total := 31 - int64(f.rq.Shift[j]) // in [1, 62] for valid multipliers
		setEpi(f.epi, j, int64(f.rq.M0[j]), 1<<(total-1), total)
		if f.epiSat != nil {
			setEpi(f.epiSat, j, int64(f.rq.M0[j]), 1<<(total-1)+int64(f.rq.ZeroPoint)<<total, total)
		}
	}
	if f.amxEligible() {
		f.amx = newAMXPlan(f)
	}
	n8 := (s.OutC + 7) / 8
	f.ng2 = (kwc + 1) / 2
	f.stride8 = s.KH * f.ng * 32
	f.stride16 = s.KH * f.ng2 * 32
	f.panel8 = make([]int8, n8*f.stride8)
	p16 := make([]int16, n8*f.stride16/2)
	f.bias16 = make([]int32, n8*8)
	copy(f.bias16, f.bias)
	for j := 0; j < s.OutC; j++ {
		t, c := j/8, j%8
		for h := 0; h < s.KH; h++ {
			for b := 0; b < kwc; b++ {
				v := f.w.at(j, h*kwc+b)
				f.panel8[t*f.stride8+((h*f.ng+b/4)*8+c)*4+b%4] = v
				p16[t*f.stride16/2+((h*f.ng2+b/2)*8+c)*2+b%2] = int16(v)
			}
		}
	}
	if len(p16) > 0 {
		f.panel16 = unsafe.Slice((*int8)(unsafe.Pointer(&p16[0])), 2*len(p16))
	}
}

// Shape returns the convolution's shape.
func (f *FusedConv) Shape() ConvShape { return f.s }

// Pooled reports whether the 2x2 max pool is fused.
func (f *FusedConv) Pooled() bool { return f.pool }

// OutH returns the output height (after the pool if pooled).
func (f *FusedConv) OutH() int { return f.oh }

// OutW returns the output width (after the pool if pooled).
func (f *FusedConv) OutW() int { return f.ow }

// Fused reports whether the selected kernels path runs the op in one pass. When it does not,
// Run computes Conv2DInt8 into a scratch image and pools it in plain Go (same results): callers
// with a faster pool of their own may prefer to run the two ops separately then.
func (f *FusedConv) Fused() bool { return current.Load().convPool != nil }

// Run computes batch images: src NHWC [batch][InH][InW][InC], dst NHWC [batch][OutH][OutW][OutC]
// (OutH, OutW of f). sc must not be used concurrently.
func (f *FusedConv) Run(dst, src []int8, batch int, sc *FusedScratch) {
	s := f.s
	if batch < 0 {
		panic(fmt.Sprintf("kernels: FusedConv.Run: batch = %d < 0", batch))
	}
	if need := batch * s.InH * s.InW * s.InC; len(src) < need {
		panic(fmt.Sprintf("kernels: FusedConv.Run: len(src) = %d < %d", len(src), need))
	}
	if need := batch * f.oh * f.ow * s.OutC; len(dst) < need {
		panic(fmt.Sprintf("kernels: FusedConv.Run: len(dst) = %d < %d", len(dst), need))
	}
	if batch == 0 {
		return
	}
	if p := current.Load(); p.convPool != nil {
		p.convPool(f, dst, src, batch, false, sc)
		return
	}
	f.runUnfused(dst, src, batch, sc)
}

// RunShifted is Run with the input given as bytes holding each int8 value plus 128 (its sign
// bit flipped): a uint8 image quantized with zero point -128 and the image's own scale, which
// the fused kernels read without a conversion pass.
func (f *FusedConv) RunShifted(dst []int8, src []byte, batch int, sc *FusedScratch) {
	s := f.s
	in := batch * s.InH * s.InW * s.InC
	if batch < 0 || len(src) < in {
		panic(fmt.Sprintf("kernels: FusedConv.RunShifted: batch %d, len(src) = %d < %d", batch, len(src), in))
	}
	if need := batch * f.oh * f.ow * s.OutC; len(dst) < need {
		panic(fmt.Sprintf("kernels: FusedConv.RunShifted: len(dst) = %d < %d", len(dst), need))
	}
	if batch == 0 {
		return
	}
	s8 := unsafe.Slice((*int8)(unsafe.Pointer(&src[0])), in)
	if p := current.Load(); p.convPool != nil {
		p.convPool(f, dst, s8, batch, true, sc)
		return
	}
	sc.in = fcGrow8(sc.in, in)
	for i, v := range s8 {
		sc.in[i] = v ^ -128
	}
	f.runUnfused(dst, sc.in, batch, sc)
}

// runUnfused is Run as Conv2DInt8 then the pool, image by image.
func (f *FusedConv) runUnfused(dst, src []int8, batch int, sc *FusedScratch) {
	s := f.s
	if !f.pool {
		sc.col = fcGrow8(sc.col, Conv2DScratchLen(s))
		Conv2DInt8(dst, src, batch, s, f.inZero, f.w, f.bias, &f.rq, sc.col)
		return
	}
	oh, ow, n := s.OutH(), s.OutW(), s.OutC
	sc.col = fcGrow8(sc.col, Conv2DScratchLen(s))
	sc.conv = fcGrow8(sc.conv, oh*ow*n)
	inImg, outImg := s.InH*s.InW*s.InC, f.oh*f.ow*n
	for b := 0; b < batch; b++ {
		Conv2DInt8(sc.conv, src[b*inImg:(b+1)*inImg], 1, s, f.inZero, f.w, f.bias, &f.rq, sc.col)
		o := dst[b*outImg : (b+1)*outImg]
		for py := 0; py < f.oh; py++ {
			r0, r1 := sc.conv[2*py*ow*n:], sc.conv[(2*py+1)*ow*n:]
			for px := 0; px < f.ow; px++ {
				d := o[(py*f.ow+px)*n : (py*f.ow+px+1)*n]
				for j := range d {
					i := 2*px*n + j
					d[j] = max(r0[i], r0[i+n], r1[i], r1[i+n])
				}
			}
		}
	}
}

// paddedInto writes one image into pad ((InH+pads) x (InW+pads) x InC bytes, then slack bytes
// of the border value) with the border holding inZero; with u8 every byte is stored as v^0x80
// (v+128 read as unsigned). With shifted, img holds the values with their sign bit flipped.
func (f *FusedConv) paddedInto(pad, img []int8, u8, shifted bool) {
	s := f.s
	c := s.InC
	pw := s.InW + s.PadLeft + s.PadRight
	z := f.inZero
	var x uint64
	if u8 {
		z ^= -128
		x = 0x8080808080808080
	}
	if shifted {
		x ^= 0x8080808080808080
	}
	zb := uint64(uint8(z)) * 0x0101010101010101
	pb := unsafe.Slice((*byte)(unsafe.Pointer(&pad[0])), len(pad))
	ib := unsafe.Slice((*byte)(unsafe.Pointer(&img[0])), s.InH*s.InW*c)
	le := binary.LittleEndian
	// Border: the top rows, the left/right margins and the bottom rows plus slack.
	top := s.PadTop * pw * c
	fillBytes(pb[:top+s.PadLeft*c], zb)
	rowLen := s.InW * c
	for y := 0; y < s.InH; y++ {
		o := top + (y*pw+s.PadLeft)*c
		row := ib[y*rowLen : (y+1)*rowLen]
		d := pb[o : o+rowLen]
		i := 0
		for ; i+8 <= len(row); i += 8 {
			le.PutUint64(d[i:], le.Uint64(row[i:])^x)
		}
		for ; i < len(row); i++ {
			d[i] = row[i] ^ byte(x)
		}
		// Right margin of this row and left margin of the next.
		e := o + rowLen
		fillBytes(pb[e:e+(s.PadRight+s.PadLeft)*c], zb)
	}
	fillBytes(pb[top+(s.InH*pw+s.PadLeft)*c:], zb)
}

// fillBytes sets every byte of b to the byte replicated in v.
func fillBytes(b []byte, v uint64) {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], v)
	}
	for ; i < len(b); i++ {
		b[i] = byte(v)
	}
}

// padLen returns the length of the padded image buffer including the slack that the SIMD
// kernels may read past the last pixel (whole tiles of 8 pixels, whole K groups, and the AMX
// kernels' up to 31 raster rows past the last conv row, see amxPlan).
func (f *FusedConv) padLen() int {
	s := f.s
	c := s.InC
	ph, pw := s.InH+s.PadTop+s.PadBottom, s.InW+s.PadLeft+s.PadRight
	return ph*pw*c + 48*s.StrideW*c + 4*f.ng + 64
}

func init() { portableImpl.convPool = convPoolPortable }

// convPoolPortable is FusedConv.Run in plain Go: a direct convolution on the padded image with
// the two-channels-per-multiplication dot products of the portable GEMM (no patch matrix), the
// pool on the accumulators, then the reference epilogue on the pooled row.
func convPoolPortable(f *FusedConv, dst, src []int8, batch int, shifted bool, sc *FusedScratch) {
	s := f.s
	if winoUsable(s) {
		convPoolWinograd(f, dst, src, batch, shifted, sc)
		return
	}
	c, n := s.InC, s.OutC
	oh, ow := s.OutH(), s.OutW()
	pw := s.InW + s.PadLeft + s.PadRight
	sc.pad = fcGrow8(sc.pad, f.padLen())
	pad := sc.pad
	sc.acc = fcGrow32(sc.acc, 2*ow*n)
	sc.conv = fcGrow8(sc.conv, ow*s.K()+8)
	patch := sc.conv
	acc0, acc1 := sc.acc[:ow*n], sc.acc[ow*n:2*ow*n]
	inImg, outImg := s.InH*s.InW*c, f.oh*f.ow*n
	for b := 0; b < batch; b++ {
		f.paddedInto(pad, src[b*inImg:(b+1)*inImg], false, shifted)
		o := dst[b*outImg : (b+1)*outImg]
		if !f.pool {
			for oy := 0; oy < oh; oy++ {
				f.convRowPortable(acc0, patch, pad, oy, pw)
				requantRows(o[oy*ow*n:], n, acc0, n, ow, n, &f.rq)
			}
			continue
		}
		for py := 0; py < f.oh; py++ {
			f.convRowPortable(acc0, patch, pad, 2*py, pw)
			f.convRowPortable(acc1, patch, pad, 2*py+1, pw)
			for px := 0; px < f.ow; px++ {
				d := acc0[px*n : px*n+n]
				a, b2, e := acc0[2*px*n:], acc1[2*px*n:], acc1[(2*px+1)*n:]
				a1 := acc0[(2*px+1)*n:]
				for j := range d {
					d[j] = max(a[j], a1[j], b2[j], e[j])
				}
			}
			requantRows(o[py*f.ow*n:], n, acc0, n, f.ow, n, &f.rq)
		}
	}
}

// convRowPortable computes the accumulators (bias included) of conv output row oy into acc
// (OutW x OutC) from the int8 padded image pad (row width pw pixels): the row's patches are
// gathered into patch (OutW x K) and multiplied by the portable GEMM.
func (f *FusedConv) convRowPortable(acc []int32, patch, pad []int8, oy, pw int) {
	s := f.s
	c, k := s.InC, s.K()
	kwc := s.KW * c
	ow := s.OutW()
	if kwc <= 8 {
		// One 8-byte word per kernel row; each store spills past the kernel row into bytes
		// that the next store (or the next pixel's) overwrites, and into patch's slack at the
		// end; the loads stay inside pad's slack.
		pb := unsafe.Slice((*byte)(unsafe.Pointer(&pad[0])), len(pad))
		qb := unsafe.Slice((*byte)(unsafe.Pointer(&patch[0])), len(patch))
		le := binary.LittleEndian
		for ox := 0; ox < ow; ox++ {
			base := (oy*s.StrideH*pw + ox*s.StrideW) * c
			for h := 0; h < s.KH; h++ {
				o := base + h*pw*c
				le.PutUint64(qb[ox*k+h*kwc:], le.Uint64(pb[o:]))
			}
		}
		gemm32Portable(acc, s.OutC, patch, k, ow, f.w, f.bias, 0, s.OutC)
		return
	}
	for ox := 0; ox < ow; ox++ {
		base := (oy*s.StrideH*pw + ox*s.StrideW) * c
		row := patch[ox*k : ox*k+k]
		for h := 0; h < s.KH; h++ {
			o := base + h*pw*c
			copyShort(row[h*kwc:h*kwc+kwc], pad[o:o+kwc])
		}
	}
	gemm32Portable(acc, s.OutC, patch, k, ow, f.w, f.bias, 0, s.OutC)
}

// fcGrow8 returns b with length n, reallocated only when its capacity is too small.
func fcGrow8(b []int8, n int) []int8 {
	if cap(b) < n {
		return make([]int8, n)
	}
	return b[:n]
}

// fcGrow32 is fcGrow8 for int32.
func fcGrow32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}
