package infer

import (
	"encoding/binary"
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
