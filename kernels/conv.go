package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// ConvShape describes a 2-D convolution on NHWC int8 input (dilation 1, one group).
type ConvShape struct {
	InH, InW, InC                        int // input height, width and channels
	OutC                                 int // output channels
	KH, KW                               int // kernel height and width
	StrideH, StrideW                     int // strides (>= 1)
	PadTop, PadLeft, PadBottom, PadRight int // zero-point padding on each side
}

// OutH returns the output height (InH + PadTop + PadBottom - KH) / StrideH + 1.
func (s ConvShape) OutH() int { return (s.InH+s.PadTop+s.PadBottom-s.KH)/s.StrideH + 1 }

// OutW returns the output width (InW + PadLeft + PadRight - KW) / StrideW + 1.
func (s ConvShape) OutW() int { return (s.InW+s.PadLeft+s.PadRight-s.KW)/s.StrideW + 1 }

// K returns the GEMM depth KH*KW*InC of the convolution.
func (s ConvShape) K() int { return s.KH * s.KW * s.InC }

// Validate reports whether the shape is usable: positive sizes and strides, non-negative
// padding, padding smaller than the kernel, and a kernel that fits the padded input.
func (s ConvShape) Validate() error {
	switch {
	case s.InH <= 0 || s.InW <= 0 || s.InC <= 0 || s.OutC <= 0:
		return fmt.Errorf("kernels: conv: sizes must be positive: %+v", s)
	case s.KH <= 0 || s.KW <= 0 || s.StrideH <= 0 || s.StrideW <= 0:
		return fmt.Errorf("kernels: conv: kernel and stride must be positive: %+v", s)
	case s.PadTop < 0 || s.PadLeft < 0 || s.PadBottom < 0 || s.PadRight < 0:
		return errors.New("kernels: conv: negative padding")
	case s.PadTop >= s.KH || s.PadBottom >= s.KH || s.PadLeft >= s.KW || s.PadRight >= s.KW:
		return fmt.Errorf("kernels: conv: padding must be smaller than the kernel: %+v", s)
	case s.InH+s.PadTop+s.PadBottom < s.KH || s.InW+s.PadLeft+s.PadRight < s.KW:
		return fmt.Errorf("kernels: conv: kernel larger than the padded input: %+v", s)
	case s.KH*s.KW*s.InC > 1<<16:
		return fmt.Errorf("kernels: conv: depth KH*KW*InC = %d exceeds 65536", s.KH*s.KW*s.InC)
	}
	return nil
}

func (s ConvShape) pointwise() bool {
	return s.KH == 1 && s.KW == 1 && s.StrideH == 1 && s.StrideW == 1 &&
		s.PadTop == 0 && s.PadLeft == 0 && s.PadBottom == 0 && s.PadRight == 0
}

// Conv2DScratchLen returns the scratch length in bytes that Conv2DInt8 needs for shape s (the
// patch matrix of one image, padded for the SIMD kernels; 0 for 1x1 stride-1 convolutions,
// which need none).
func Conv2DScratchLen(s ConvShape) int {
	if s.pointwise() {
		return 0
	}
	return (s.OutH()*s.OutW() + 8) * ((s.K() + 3) &^ 3)
}

func checkConv(fn string, dst, src []int8, batch int, s ConvShape, bias []int32, rq *Requant) {
	if err := s.Validate(); err != nil {
		panic("kernels: " + fn + ": " + err.Error())
	}
	if batch < 0 {
		panic(fmt.Sprintf("kernels: %s: batch = %d < 0", fn, batch))
	}
	if need := batch * s.InH * s.InW * s.InC; len(src) < need {
		panic(fmt.Sprintf("kernels: %s: len(src) = %d < %d", fn, len(src), need))
	}
	if need := batch * s.OutH() * s.OutW() * s.OutC; len(dst) < need {
		panic(fmt.Sprintf("kernels: %s: len(dst) = %d < %d", fn, len(dst), need))
	}
	if bias != nil && len(bias) != s.OutC {
		panic(fmt.Sprintf("kernels: %s: len(bias) = %d, want OutC = %d", fn, len(bias), s.OutC))
	}
	rq.check(s.OutC, fn)
}

// Conv2DInt8 computes a 2-D convolution: dst is NHWC [batch][OutH][OutW][OutC], src NHWC
// [batch][InH][InW][InC], weights packed as OutC x (KH*KW*InC) with k index (kh*KW+kw)*InC+c.
// Padding reads as the input zero point inZero, so bias - inZero*RowSums stays exact. scratch
// may be nil (allocated per call) or a caller buffer of at least Conv2DScratchLen(s) bytes,
// reused across calls to avoid allocation (concurrent calls need distinct scratch buffers).
func Conv2DInt8(dst, src []int8, batch int, s ConvShape, inZero int8, w *PackedInt8, bias []int32, rq *Requant, scratch []int8) {
	checkConv("Conv2DInt8", dst, src, batch, s, bias, rq)
	if w == nil || w.n != s.OutC || w.k != s.K() {
		panic(fmt.Sprintf("kernels: Conv2DInt8: weights must be OutC x KH*KW*InC = %d x %d", s.OutC, s.K()))
	}
	conv2D(current.Load(), dst, src, batch, s, inZero, w, bias, rq, scratch)
}

func conv2D(p *impl, dst, src []int8, batch int, s ConvShape, inZero int8, w *PackedInt8, bias []int32, rq *Requant, scratch []int8) {
	oh, ow, k := s.OutH(), s.OutW(), s.K()
	if s.pointwise() {
		gemmInt8(p, dst, s.OutC, src, s.InC, batch*oh*ow, w, bias, rq)
		return
	}
	if p.conv2DDirect != nil {
		p.conv2DDirect(dst, src, batch, s, inZero, w, bias, rq, scratch)
		return
	}
	need := Conv2DScratchLen(s) // oh*ow*k plus slack for im2colSmall
	if len(scratch) < need {
		scratch = make([]int8, need)
	}
	col := scratch[:need]
	inImg, outImg := s.InH*s.InW*s.InC, oh*ow*s.OutC
	for b := 0; b < batch; b++ {
		im2colRows(col, k, src[b*inImg:(b+1)*inImg], s, inZero, nil)
		gemmInt8(p, dst[b*outImg:(b+1)*outImg], s.OutC, col, k, oh*ow, w, bias, rq)
	}
}

// im2colRows writes the patches of one image: row (oy*OutW+ox) at col[row*ldc:], column
// (kh*KW+kw)*InC+c, zero-filled from K to ldc. If sums is not nil, sums[row] receives the sum
// of the row. The image is first copied into a buffer whose border holds inZero, so that every
// kernel row of a patch is one contiguous run of KW*InC bytes (no bounds checks, no per-pixel
// memmove calls).
func im2colRows(col []int8, ldc int, img []int8, s ConvShape, inZero int8, sums []int32) {
	oh, ow, k := s.OutH(), s.OutW(), s.K()
	c := s.InC
	kwc := s.KW * c
	if kwc <= 8 && len(col) >= (oh*ow-1)*ldc+(s.KH-1)*kwc+8 {
		im2colSmall(col, ldc, img, s, inZero, sums)
		return
	}
	pad, bp := paddedImage(img, s, inZero, 0)
	pw := s.InW + s.PadLeft + s.PadRight
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			ri := oy*ow + ox
			row := col[ri*ldc : ri*ldc+ldc]
			for kh := 0; kh < s.KH; kh++ {
				o := ((oy*s.StrideH+kh)*pw + ox*s.StrideW) * c
				copyShort(row[kh*kwc:(kh+1)*kwc], pad[o:o+kwc])
			}
			clear(row[k:])
			if sums != nil {
				var t int32
				for _, v := range row[:k] {
					t += int32(v)
				}
				sums[ri] = t
			}
		}
	}
	padPool.Put(bp)
}

// paddedImage copies one image into a pooled buffer of (InH+pads) x (InW+pads) x InC bytes
// whose border holds inZero, plus slack bytes; the caller returns bp to padPool.
func paddedImage(img []int8, s ConvShape, inZero int8, slack int) ([]int8, *[]int8) {
	c := s.InC
	ph, pw := s.InH+s.PadTop+s.PadBottom, s.InW+s.PadLeft+s.PadRight
	need := ph*pw*c + slack
	hw := highWater(&hwm8, need)
	bp := padPool.Get()
	if cap(*bp) < need {
		*bp = make([]int8, need, hw)
	}
	pad := (*bp)[:need]
	fill(pad, inZero)
	for y := 0; y < s.InH; y++ {
		copy(pad[((y+s.PadTop)*pw+s.PadLeft)*c:], img[y*s.InW*c:(y+1)*s.InW*c])
	}
	return pad, bp
}

// copyShort is copy for the short runs of patch building, without a memmove call: whole
// 8-byte words, then one final word ending at the last byte (overlapping the previous one).
func copyShort(dst, src []int8) {
	n := len(src)
	if n > 64 || n > len(dst) {
		copy(dst, src)
		return
	}
	if n < 8 {
		for i, v := range src {
			dst[i] = v
		}
		return
	}
	d := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), n)
	s := unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(d[i:i+8], binary.LittleEndian.Uint64(s[i:i+8]))
	}
	binary.LittleEndian.PutUint64(d[n-8:n], binary.LittleEndian.Uint64(s[n-8:n]))
}

var padPool freeList[[]int8]

// im2colSmall is im2colRows for KW*InC <= 8 (the first layer of image models, InC = 1 or 3):
// the image is copied once into a buffer with the padding filled with inZero, then every
// kernel row of a patch is one unaligned 8-byte load and store. The stores spill up to 8
// bytes past the patch row; rows are written in increasing order so each spill is
// overwritten by the next row, and the caller provides slack after the last one.
func im2colSmall(col []int8, ldc int, img []int8, s ConvShape, inZero int8, sums []int32) {
	oh, ow, k := s.OutH(), s.OutW(), s.K()
	c := s.InC
	kwc := s.KW * c
	pw := s.InW + s.PadLeft + s.PadRight
	padded, bp := paddedImage(img, s, inZero, 8)
	pad := unsafe.Slice((*byte)(unsafe.Pointer(&padded[0])), len(padded))
	out := unsafe.Slice((*byte)(unsafe.Pointer(&col[0])), len(col))
	rowStep, khStep, oxStep := s.StrideH*pw*c, pw*c, s.StrideW*c
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			ri := oy*ow + ox
			o := ri * ldc
			base := oy*rowStep + ox*oxStep
			var t int32
			for kh := 0; kh < s.KH; kh++ {
				sp, dp := base+kh*khStep, o+kh*kwc
				v := binary.LittleEndian.Uint64(pad[sp : sp+8])
				binary.LittleEndian.PutUint64(out[dp:dp+8], v)
				if sums != nil {
					for i := 0; i < kwc; i++ {
						t += int32(int8(v >> (8 * i)))
					}
				}
			}
			for i := o + k; i < o+ldc; i++ {
				out[i] = 0
			}
			if sums != nil {
				sums[ri] = t
			}
		}
	}
	padPool.Put(bp)
}

func fill(b []int8, v int8) {
	for i := range b {
		b[i] = v
	}
}

// DepthwiseConv2DInt8 computes a depthwise convolution with channel multiplier 1 (OutC must
// equal InC) on NHWC tensors; weights w[(kh*KW+kw)*InC+c]; padding reads as inZero. bias must
// already be corrected by the caller: bias[c] - inZero*sum_{kh,kw} w[..c].
func DepthwiseConv2DInt8(dst, src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, rq *Requant) {
	checkConv("DepthwiseConv2DInt8", dst, src, batch, s, bias, rq)
	if s.OutC != s.InC {
		panic(fmt.Sprintf("kernels: DepthwiseConv2DInt8: OutC = %d must equal InC = %d", s.OutC, s.InC))
	}
	if len(w) != s.KH*s.KW*s.InC {
		panic(fmt.Sprintf("kernels: DepthwiseConv2DInt8: len(w) = %d, want KH*KW*InC = %d", len(w), s.KH*s.KW*s.InC))
	}
	if p := current.Load(); p.depthwise != nil {
		p.depthwise(dst, src, batch, s, inZero, w, bias, rq)
		return
	}
	depthwise(dst, src, batch, s, inZero, w, bias, rq)
}

func depthwise(dst, src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, rq *Requant) {
	oh, ow, c := s.OutH(), s.OutW(), s.InC
	bp := getAcc(c)
	acc := *bp
	z := int32(inZero)
	for b := 0; b < batch; b++ {
		img := src[b*s.InH*s.InW*c:]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				if bias != nil {
					copy(acc, bias)
				} else {
					clear(acc)
				}
				for kh := 0; kh < s.KH; kh++ {
					iy := oy*s.StrideH - s.PadTop + kh
					for kw := 0; kw < s.KW; kw++ {
						ix := ox*s.StrideW - s.PadLeft + kw
						wk := w[(kh*s.KW+kw)*c : (kh*s.KW+kw+1)*c]
						if iy < 0 || iy >= s.InH || ix < 0 || ix >= s.InW {
							for ch, v := range wk {
								acc[ch] += z * int32(v)
							}
							continue
						}
						x := img[(iy*s.InW+ix)*c : (iy*s.InW+ix+1)*c]
						for ch, v := range wk {
							acc[ch] += int32(x[ch]) * int32(v)
						}
					}
				}
				o := ((b*oh+oy)*ow + ox) * c
				requantRow(dst[o:o+c], acc, rq)
			}
		}
	}
	accPool.Put(bp)
}
