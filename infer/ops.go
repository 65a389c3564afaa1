package infer

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// window returns the valid input range [a, b) of output position o along one axis.
func window(o, stride, pad, k, n int) (int, int) {
	a := o*stride - pad
	return max(a, 0), min(a+k, n)
}

// maxPool takes the maximum of the valid part of each window (padding is ignored), then clamps to
// the fused activation's bounds. Input and output share quantization parameters, so no rescaling.
func maxPool(dst, src []int8, batch int, st *step) {
	if st.kh == 2 && st.kw == 2 && st.sh == 2 && st.sw == 2 && st.pt == 0 && st.pl == 0 {
		maxPool2x2(dst, src, batch, st)
		return
	}
	c := st.c
	clampOut := st.lo > -128 || st.hi < 127
	lo, hi := int8(st.lo), int8(st.hi)
	for b := 0; b < batch; b++ {
		img := src[b*st.h*st.wd*c : (b+1)*st.h*st.wd*c]
		for oy := 0; oy < st.oh; oy++ {
			y0, y1 := window(oy, st.sh, st.pt, st.kh, st.h)
			for ox := 0; ox < st.ow; ox++ {
				x0, x1 := window(ox, st.sw, st.pl, st.kw, st.wd)
				base := ((b*st.oh+oy)*st.ow + ox) * c
				o := dst[base : base+c]
				copy(o, img[(y0*st.wd+x0)*c:(y0*st.wd+x0+1)*c])
				for y := y0; y < y1; y++ {
					row := img[y*st.wd*c : (y+1)*st.wd*c]
					for x := x0; x < x1; x++ {
						in := row[x*c : x*c+c]
						in = in[:len(o)]
						for i, v := range in {
							o[i] = max(o[i], v)
						}
					}
				}
				if clampOut {
					for i, v := range o {
						o[i] = min(max(v, lo), hi)
					}
				}
			}
		}
	}
}

// maxPool2x2 is maxPool for the common 2x2 window with stride 2 and no padding.
func maxPool2x2(dst, src []int8, batch int, st *step) {
	if maxPool2x2Vector(dst, src, batch, st) {
		return
	}
	if st.c%8 == 0 {
		maxPool2x2x8(dst, src, batch, st)
		return
	}
	maxPool2x2Scalar(dst, src, batch, st)
}

// maxPool2x2Scalar is maxPool2x2 one channel at a time.
func maxPool2x2Scalar(dst, src []int8, batch int, st *step) {
	c, wd := st.c, st.wd
	clampOut := st.lo > -128 || st.hi < 127
	lo, hi := int8(st.lo), int8(st.hi)
	rowLen := wd * c
	for b := 0; b < batch; b++ {
		img := src[b*st.h*rowLen : (b+1)*st.h*rowLen]
		for oy := 0; oy < st.oh; oy++ {
			r0 := img[2*oy*rowLen : (2*oy+1)*rowLen]
			r1 := img[(2*oy+1)*rowLen : (2*oy+2)*rowLen]
			out := dst[((b*st.oh+oy)*st.ow)*c : ((b*st.oh+oy+1)*st.ow)*c]
			for ox := 0; ox < st.ow; ox++ {
				a := r0[2*ox*c : 2*ox*c+2*c]
				d := r1[2*ox*c : 2*ox*c+2*c]
				o := out[ox*c : ox*c+c]
				a0, a1, d0, d1 := a[:len(o)], a[len(o):], d[:len(o)], d[len(o):]
				a1, d0, d1 = a1[:len(o)], d0[:len(o)], d1[:len(o)]
				for i := range o {
					o[i] = max(max(a0[i], a1[i]), max(d0[i], d1[i]))
				}
			}
			if clampOut {
				for i, v := range out {
					out[i] = min(max(v, lo), hi)
				}
			}
		}
	}
}

const (
	hiBits = 0x8080808080808080
	loBits = 0x7f7f7f7f7f7f7f7f
)

// max8 returns the byte-wise maximum of 8 signed int8 lanes packed in a and b (SWAR): for each byte,
// a >= b when the sign bits differ and b's is set, or they agree and a's low 7 bits are >= b's
// (bit 7 of (a|0x80)-(b&0x7f), which cannot borrow across bytes).
func max8(a, b uint64) uint64 {
	t := (a | hiBits) - (b & loBits)
	ge := ((b &^ a) | (^(a ^ b) & t)) & hiBits
	m := (ge >> 7) * 0xff
	return (a & m) | (b &^ m)
}

// clamp8 clamps 8 signed int8 lanes to [lo, hi] (lo, hi replicated in every byte).
func clamp8(v, lo, hi uint64) uint64 { return ^max8(^max8(v, lo), ^hi) }

func bytesOf(v []int8) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v))
}

// maxPool2x2x8 is maxPool2x2 for channel counts that are a multiple of 8: eight channels per
// 64-bit word.
func maxPool2x2x8(dst, src []int8, batch int, st *step) {
	c, wd := st.c, st.wd
	clampOut := st.lo > -128 || st.hi < 127
	lo := uint64(uint8(int8(st.lo))) * 0x0101010101010101
	hi := uint64(uint8(int8(st.hi))) * 0x0101010101010101
	rowLen := wd * c
	s, d := bytesOf(src), bytesOf(dst)
	le := binary.LittleEndian
	for b := 0; b < batch; b++ {
		img := s[b*st.h*rowLen : (b+1)*st.h*rowLen]
		for oy := 0; oy < st.oh; oy++ {
			r0 := img[2*oy*rowLen : (2*oy+1)*rowLen]
			r1 := img[(2*oy+1)*rowLen : (2*oy+2)*rowLen]
			out := d[((b*st.oh+oy)*st.ow)*c : ((b*st.oh+oy+1)*st.ow)*c]
			for ox := 0; ox < st.ow; ox++ {
				i0 := 2 * ox * c
				o := out[ox*c : ox*c+c]
				for k := 0; k+8 <= len(o); k += 8 {
					v := max8(max8(le.Uint64(r0[i0+k:]), le.Uint64(r0[i0+c+k:])), max8(le.Uint64(r1[i0+k:]), le.Uint64(r1[i0+c+k:])))
					if clampOut {
						v = clamp8(v, lo, hi)
					}
					le.PutUint64(o[k:], v)
				}
			}
		}
	}
}

// avgPool averages the valid part of each window (TFLite's rule: padding is not counted) with the
// quotient rounded half away from zero, then clamps.
func avgPool(dst, src []int8, batch int, st *step, acc []int32) {
	if st.c%8 == 0 && st.kh*st.kw < 1<<22 { // roundDivider's bound: 128*n + n/2 < 2^31
		avgPoolx8(dst, src, batch, st, acc)
		return
	}
	avgPoolScalar(dst, src, batch, st, acc)
}

// avgPoolScalar is avgPool one channel at a time (the reference of avgPoolx8).
func avgPoolScalar(dst, src []int8, batch int, st *step, acc []int32) {
	c := st.c
	for b := 0; b < batch; b++ {
		img := src[b*st.h*st.wd*c:]
		for oy := 0; oy < st.oh; oy++ {
			y0, y1 := window(oy, st.sh, st.pt, st.kh, st.h)
			for ox := 0; ox < st.ow; ox++ {
				x0, x1 := window(ox, st.sw, st.pl, st.kw, st.wd)
				clear(acc)
				for y := y0; y < y1; y++ {
					for x := x0; x < x1; x++ {
						in := img[(y*st.wd+x)*c:][:c]
						for i, v := range in {
							acc[i] += int32(v)
						}
					}
				}
				n := int32((y1 - y0) * (x1 - x0))
				o := dst[((b*st.oh+oy)*st.ow+ox)*c:][:c]
				for i, a := range acc {
					o[i] = int8(quant.Clamp(quant.RoundDiv(a, n), st.lo, st.hi))
				}
			}
		}
	}
}

// avgPoolx8 is avgPool for channel counts that are a multiple of 8. It sums eight channels per
// 64-bit word: the bytes, offset by 128 to 0..255, are split into the even and the odd bytes of
// the word, each in four 16-bit lanes, and added over the window in registers; 256 pixels fit in a
// lane (256*255 < 65536), so the lanes are moved into acc every 256 pixels, and 128 per pixel is
// subtracted at the end. The sums equal avgPoolScalar's, so the outputs are identical.
func avgPoolx8(dst, src []int8, batch int, st *step, acc []int32) {
	const (
		bias  = 0x8080808080808080
		bytes = 0x00FF00FF00FF00FF
		flush = 256 // pixels per lane flush
	)
	c := st.c
	s, d := bytesOf(src), bytesOf(dst)
	le := binary.LittleEndian
	var div roundDivider
	wd := st.wd
	for b := 0; b < batch; b++ {
		img := s[b*st.h*st.wd*c:]
		for oy := 0; oy < st.oh; oy++ {
			y0, y1 := window(oy, st.sh, st.pt, st.kh, st.h)
			for ox := 0; ox < st.ow; ox++ {
				x0, x1 := window(ox, st.sw, st.pl, st.kw, st.wd)
				n := (y1 - y0) * (x1 - x0)
				clear(acc)
				rowLen := (x1-x0-1)*c + 8 // bytes from a row's first to its last word
				for k := 0; k+8 <= c; k += 8 {
					a := acc[k : k+8]
					var even, odd uint64
					pixels := 0
					for p := (y0*wd+x0)*c + k; p < (y1*wd+x0)*c+k; p += wd * c {
						row := img[p : p+rowLen]
						for i := 0; i < len(row)-7; i += c {
							w := le.Uint64(row[i:]) ^ bias
							even += w & bytes
							odd += (w >> 8) & bytes
							if pixels++; pixels == flush {
								addLanes(a, even, odd)
								even, odd, pixels = 0, 0, 0
							}
						}
					}
					addLanes(a, even, odd)
				}
				off := int32(128 * n)
				if n != div.d {
					div = newRoundDivider(n)
				}
				o := d[((b*st.oh+oy)*st.ow+ox)*c:][:c]
				for i, v := range acc[:c] {
					o[i] = byte(int8(quant.Clamp(div.roundDiv(v-off), st.lo, st.hi)))
				}
			}
		}
	}
}

// roundDivider computes quant.RoundDiv(v, d) for a fixed divisor d >= 1 with a multiplication
// and a shift (Granlund and Montgomery, "Division by invariant integers using multiplication",
// 1994: with 2^(l-1) < d <= 2^l, m = ceil(2^(31+l)/d) < 2^32 gives floor(x/d) = x*m >> (31+l)
// for every 0 <= x < 2^31). The zero value has d 0 and must not be used.
type roundDivider struct {
	d     int
	m     uint64
	shift uint
}

// newRoundDivider returns the divider for d (1 <= d < 2^30).
func newRoundDivider(d int) roundDivider {
	l := uint(bits.Len(uint(d - 1))) // smallest l with d <= 2^l
	s := 31 + l
	m := (uint64(1)<<s + uint64(d) - 1) / uint64(d)
	return roundDivider{d: d, m: m, shift: s}
}

// roundDiv is quant.RoundDiv(v, d): v/d rounded half away from zero, for |v| + d/2 < 2^31.
func (r roundDivider) roundDiv(v int32) int32 {
	h := uint64(r.d / 2)
	if v >= 0 {
		return int32((uint64(v) + h) * r.m >> r.shift)
	}
	return -int32((uint64(-int64(v)) + h) * r.m >> r.shift)
}

// addLanes adds the 16-bit lanes of avgPoolx8 to a: even holds channels 0, 2, 4, 6 and odd
// channels 1, 3, 5, 7.
func addLanes(a []int32, even, odd uint64) {
	a = a[:8]
	for j := 0; j < 4; j++ {
		a[2*j] += int32(even >> (16 * j) & 0xFFFF)
		a[2*j+1] += int32(odd >> (16 * j) & 0xFFFF)
	}
}

// addTable returns the output of add for every pair of int8 inputs, index uint8(a)<<8 | uint8(b):
// Add is a function of two int8 levels, so the runtime looks its 65,536 values up instead of
// running three multiplier applications per element.
func addTable(st *step) *[1 << 16]int8 {
	t := new([1 << 16]int8)
	a, b := make([]int8, 256), make([]int8, 256)
	for i := range b {
		b[i] = int8(i)
	}
	for x := 0; x < 256; x++ {
		for i := range a {
			a[i] = int8(x)
		}
		add(t[x<<8:(x+1)<<8], a, b, st)
	}
	return t
}

// addLookup is the runtime's Add: each output is read from st.addTab.
func addLookup(dst, a, b []int8, st *step) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	t := st.addTab
	for i, x := range a {
		dst[i] = t[int(uint8(x))<<8|int(uint8(b[i]))]
	}
}

// add computes TFLite's quantized Add: both inputs, minus their zero points and shifted left by
// qmodel.AddLeftShift, are rescaled to a common scale, summed and requantized to the output. It
// fills addTable and is the reference of the LM runtime's residual add.
func add(dst, a, b []int8, st *step) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	for i := range a {
		x := (int32(a[i]) - st.zA) << qmodel.AddLeftShift
		y := (int32(b[i]) - st.zB) << qmodel.AddLeftShift
		x = quant.MultiplyByQuantizedMultiplier(x, st.mA.M0, st.mA.Shift)
		y = quant.MultiplyByQuantizedMultiplier(y, st.mB.M0, st.mB.Shift)
		dst[i] = int8(quant.Requantize(x+y, st.mOut, st.zOut, st.lo, st.hi))
	}
}

// softmax computes, for each row of rowN int8 logits, p_i = e_i / sum_j e_j with e = exp(s*(q - max))
// from a Q20 table (computed at load), and outputs round(256*p_i) - 128 clamped to int8 (scale 1/256,
// zero point -128), using only integer arithmetic.
func softmax(dst, src []int8, st *step) {
	n := st.rowN
	for r := 0; r+n <= len(src); r += n {
		row, out := src[r:r+n], dst[r:r+n]
		mx := row[0]
		for _, v := range row {
			if v > mx {
				mx = v
			}
		}
		var sum int64
		for _, v := range row {
			sum += st.exp[int(mx)-int(v)]
		}
		for i, v := range row {
			e := st.exp[int(mx)-int(v)]
			q := (e*512+sum)/(2*sum) - 128
			if q > 127 {
				q = 127
			}
			out[i] = int8(q)
		}
	}
}
