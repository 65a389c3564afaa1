//go:build !purego

package kernels

import "github.com/qatgo/qatgo/quant"

// The AVX-512 VNNI depthwise convolution (channel multiplier 1, channels a multiple of 16):
// channels in the vector lanes, two kernel taps per VPDPWSSD. Each image is copied into a
// buffer with a border of input zero points (the border is written once per call), widened to
// int16 pairs of horizontally adjacent pixels (dwPairsAVX512), and every output row is one
// dwRowVNNI call, which requantizes in registers and stores int8. Bit-identical to depthwise:
// the same int32 sums of exact products, and quant.Requantize computed in int64 lanes.

//go:noescape
func dwPairsAVX512(q *int16, p *int8, n, cs int, idx *int16)

//go:noescape
func dwRowVNNI(dst *int8, q *int16, w *int32, bias *int32, ep *int64, cs, kh, npw, rowStride, pixStride, ow int, loZ, hiZ, zp int64)

// dwEpilogue writes the requantization constants of dwRowVNNI, per block of 16 channels 48
// int64: M0, rounding term 2^(right-1) and right shift 31-Shift (shift clamped as
// quant.Multiplier.Prepare does) for the 8 even channels, then for the 8 odd ones, in the order
// M0 even, M0 odd, round even, round odd, right even, right odd.
func dwEpilogue(ep []int64, rq *Requant, c int) {
	for ch := 0; ch < c; ch++ {
		m := quant.Multiplier{M0: rq.M0[ch], Shift: rq.Shift[ch]}.Prepare().Multiplier()
		right := int64(31 - m.Shift)
		e := ep[ch/16*48+ch%16/2+ch%2*8:]
		e[0], e[16], e[32] = int64(m.M0), int64(1)<<(right-1), right
	}
}

// dwPairIdx interleaves the words of two tables (VPERMT2W): word 2j from the first, 2j+1 from
// the second.
var dwPairIdx = func() (t [32]int16) {
	for j := 0; j < 16; j++ {
		t[2*j], t[2*j+1] = int16(j), int16(32+j)
	}
	return t
}()

// dwScratch holds the per-call buffers of depthwiseVNNI (pooled).
type dwScratch struct {
	pad  []int8  // the zero-point-padded image, plus one pixel of slack
	q    []int16 // pixel pairs of the padded image
	w    []int32 // tap pairs of the weights, [KH][(KW+1)/2][C]
	bias []int32
	ep   []int64 // requantization constants (dwEpilogue)
}

var dwPool freeList[dwScratch]

// depthwiseVNNI is DepthwiseConv2DInt8 on the avx512vnni path (arguments already checked).
func depthwiseVNNI(dst, src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, rq *Requant) {
	c := s.InC
	if c%16 != 0 || !rq.int32Safe() || rq.Min > rq.Max || rq.Min < -128 || rq.Max > 127 {
		avx512Kernels.depthwise(dst, src, batch, s, inZero, w, bias, rq)
		return
	}
	oh, ow := s.OutH(), s.OutW()
	ph, pw := s.InH+s.PadTop+s.PadBottom, s.InW+s.PadLeft+s.PadRight
	npw := (s.KW + 1) / 2
	sc := dwPool.Get()
	defer dwPool.Put(sc)
	sc.w = growI32(sc.w, s.KH*npw*c)
	for kh := 0; kh < s.KH; kh++ {
		for j := 0; j < npw; j++ {
			row := sc.w[(kh*npw+j)*c : (kh*npw+j+1)*c]
			lo := w[(kh*s.KW+2*j)*c:]
			for ch := range row {
				v := uint32(uint16(int16(lo[ch])))
				if 2*j+1 < s.KW {
					v |= uint32(uint16(int16(w[(kh*s.KW+2*j+1)*c+ch]))) << 16
				}
				row[ch] = int32(v)
			}
		}
	}
	sc.bias = growI32(sc.bias, c)
	clear(sc.bias)
	if bias != nil {
		copy(sc.bias, bias)
	}
	np := ph * pw * c
	sc.pad = growI8(sc.pad, np+c)
	pad := sc.pad
	fillBorder(pad, s, c, inZero)
	sc.q = growI16(sc.q, 2*np)
	q := sc.q
	sc.ep = growI64(sc.ep, c*3)
	dwEpilogue(sc.ep, rq, c)
	zp := int64(rq.ZeroPoint)
	img := s.InH * s.InW * c
	for n := 0; n < batch; n++ {
		in := src[n*img : (n+1)*img]
		for y := 0; y < s.InH; y++ {
			copy(pad[((y+s.PadTop)*pw+s.PadLeft)*c:], in[y*s.InW*c:(y+1)*s.InW*c])
		}
		dwPairsAVX512(&q[0], &pad[0], np/16, c, &dwPairIdx[0])
		for oy := 0; oy < oh; oy++ {
			dwRowVNNI(&dst[((n*oh+oy)*ow)*c], &q[2*oy*s.StrideH*pw*c], &sc.w[0], &sc.bias[0], &sc.ep[0],
				c, s.KH, npw, pw*c*4, s.StrideW*c*4, ow, int64(rq.Min)-zp, int64(rq.Max)-zp, zp)
		}
	}
}

// fillBorder writes inZero into the padding of a (InH+pads) x (InW+pads) x c image and into the
// slack after it; the interior is left to the per-image copies.
func fillBorder(pad []int8, s ConvShape, c int, inZero int8) {
	pw := s.InW + s.PadLeft + s.PadRight
	rowBytes := pw * c
	fill(pad[:s.PadTop*rowBytes], inZero)
	for y := s.PadTop; y < s.PadTop+s.InH; y++ {
		row := pad[y*rowBytes : (y+1)*rowBytes]
		fill(row[:s.PadLeft*c], inZero)
		fill(row[(s.PadLeft+s.InW)*c:], inZero)
	}
	fill(pad[(s.PadTop+s.InH)*rowBytes:], inZero)
}
