//go:build !purego

package infer

import "github.com/qatgo/qatgo/kernels"

// maxPool2x2Vector runs maxPool2x2 with maxPool2x2RowAVX2 (16 channels per VPMAXSB) when the
// kernels path has AVX2 and the channel count is a multiple of 16, and reports whether it did.
func maxPool2x2Vector(dst, src []int8, batch int, st *step) bool {
	c, wd, ow := st.c, st.wd, st.ow
	if c%16 != 0 || ow == 0 || st.oh == 0 {
		return false
	}
	switch kernels.Path() {
	case "avx512vnni", "avxvnni", "avx2":
	default:
		return false
	}
	rowLen := wd * c
	for b := 0; b < batch; b++ {
		img := src[b*st.h*rowLen : (b+1)*st.h*rowLen]
		for oy := 0; oy < st.oh; oy++ {
			r0 := img[2*oy*rowLen : (2*oy+1)*rowLen][:2*ow*c]
			r1 := img[(2*oy+1)*rowLen : (2*oy+2)*rowLen][:2*ow*c]
			out := dst[((b*st.oh+oy)*ow)*c : ((b*st.oh+oy+1)*ow)*c]
			maxPool2x2RowAVX2(&out[0], &r0[0], &r1[0], ow, c, int64(st.lo), int64(st.hi))
		}
	}
	return true
}

// maxPool2x2RowAVX2 writes one output row of a 2x2 stride-2 max pool: out[ox*c+i] is the
// maximum of r0 and r1 at pixels 2ox and 2ox+1, channel i, clamped to [lo, hi]; c is a multiple
// of 16.
//
//go:noescape
func maxPool2x2RowAVX2(out, r0, r1 *int8, ow, c int, lo, hi int64)
