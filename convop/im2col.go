package convop

// geom is the geometry of one 2-D convolution (NCHW, dilation 1).
type geom struct {
	c, h, w      int // input channels, height, width
	kh, kw       int // kernel height and width
	padH, padW   int
	strideH      int
	strideW      int
	outH, outW   int
	cout         int
	kdim, pixels int // c*kh*kw rows of the column matrix, outH*outW columns
}

func newGeom(c, h, w, cout, kh, kw, padH, padW, strideH, strideW int) geom {
	g := geom{c: c, h: h, w: w, cout: cout, kh: kh, kw: kw, padH: padH, padW: padW, strideH: strideH, strideW: strideW}
	g.outH = (h+2*padH-kh)/strideH + 1
	g.outW = (w+2*padW-kw)/strideW + 1
	g.kdim = c * kh * kw
	g.pixels = g.outH * g.outW
	return g
}

// validOut returns the range [lo, hi) of output positions o for which the
// input index o*stride - pad + k lies in [0, size).
func validOut(k, pad, stride, size, out int) (lo, hi int) {
	// o*stride >= pad - k  and  o*stride <= size - 1 + pad - k
	lo = 0
	if d := pad - k; d > 0 {
		lo = (d + stride - 1) / stride
	}
	top := size - 1 + pad - k
	if top < 0 {
		return 0, 0
	}
	hi = min(out, top/stride+1)
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col writes the column matrix of one image x (c x h x w) into col
// (kdim x pixels, row-major): col[(ci*kh+i)*kw+j][oy*outW+ox] =
// x[ci][oy*strideH-padH+i][ox*strideW-padW+j], zero outside the image.
func im2col[T float32 | float64](g *geom, x, col []T) {
	if g.flat() {
		im2colFlat(g, x, col)
		return
	}
	im2colGeneral(g, x, col)
}

func im2colGeneral[T float32 | float64](g *geom, x, col []T) {
	for ci := 0; ci < g.c; ci++ {
		plane := x[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for i := 0; i < g.kh; i++ {
			yLo, yHi := validOut(i, g.padH, g.strideH, g.h, g.outH)
			for j := 0; j < g.kw; j++ {
				row := col[((ci*g.kh+i)*g.kw+j)*g.pixels:][:g.pixels]
				xLo, xHi := validOut(j, g.padW, g.strideW, g.w, g.outW)
				if xLo >= xHi { // this kernel column only ever sees padding
					clear(row)
					continue
				}
				clear(row[:yLo*g.outW])
				clear(row[yHi*g.outW:])
				ix0 := xLo*g.strideW - g.padW + j
				for oy := yLo; oy < yHi; oy++ {
					dst := row[oy*g.outW : (oy+1)*g.outW]
					src := plane[(oy*g.strideH-g.padH+i)*g.w:][:g.w]
					// Short rows: explicit loops beat copy/clear calls.
					for k := 0; k < xLo; k++ {
						dst[k] = 0
					}
					for k := xHi; k < len(dst); k++ {
						dst[k] = 0
					}
					if g.strideW == 1 {
						copy(dst[xLo:xHi], src[ix0:])
						continue
					}
					ix := ix0
					for ox := xLo; ox < xHi; ox++ {
						dst[ox] = src[ix]
						ix += g.strideW
					}
				}
			}
		}
	}
}

// col2im adds the column matrix col (kdim x pixels) back into the image
// gradient dx (c x h x w): the adjoint of im2col.
// col is used as scratch: entries for padded positions may be zeroed.
func col2im[T float32 | float64](g *geom, col, dx []T) {
	if g.flat() {
		col2imFlat(g, col, dx)
		return
	}
	col2imGeneral(g, col, dx)
}

func col2imGeneral[T float32 | float64](g *geom, col, dx []T) {
	for ci := 0; ci < g.c; ci++ {
		plane := dx[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for i := 0; i < g.kh; i++ {
			yLo, yHi := validOut(i, g.padH, g.strideH, g.h, g.outH)
			for j := 0; j < g.kw; j++ {
				row := col[((ci*g.kh+i)*g.kw+j)*g.pixels:][:g.pixels]
				xLo, xHi := validOut(j, g.padW, g.strideW, g.w, g.outW)
				if xLo >= xHi {
					continue
				}
				for oy := yLo; oy < yHi; oy++ {
					src := row[oy*g.outW : (oy+1)*g.outW]
					dst := plane[(oy*g.strideH-g.padH+i)*g.w:][:g.w]
					ix := xLo*g.strideW - g.padW + j
					if g.strideW == 1 {
						d := dst[ix : ix+xHi-xLo]
						for k, v := range src[xLo:xHi] {
							d[k] += v
						}
						continue
					}
					for ox := xLo; ox < xHi; ox++ {
						dst[ix] += src[ox]
						ix += g.strideW
					}
				}
			}
		}
	}
}

// flat reports whether the convolution has unit strides and keeps the
// width (outW == w, e.g. 3x3 with padding 1). Then row (ci, i, j) of the
// column matrix, read as one flat outH*w vector, is the input plane read
// from flat offset (i-padH)*w + (j-padW), except in the at most padW
// columns at each edge that fall into the padding: one long copy plus a
// few fix-ups replace a short copy per output row.
func (g *geom) flat() bool {
	return g.strideH == 1 && g.strideW == 1 && g.outW == g.w
}

// flatRange returns, for row (i, j) of the column matrix, the flat range
// [dLo, dHi) of the row that is copied from the input plane starting at
// flat index sLo, and the valid output rows [yLo, yHi) and columns
// [xLo, xHi). When no output position reads the image, yLo == yHi == 0.
func (g *geom) flatRange(i, j int) (dLo, dHi, sLo, yLo, yHi, xLo, xHi int) {
	yLo, yHi = validOut(i, g.padH, 1, g.h, g.outH)
	xLo, xHi = validOut(j, g.padW, 1, g.w, g.outW)
	if yLo >= yHi || xLo >= xHi {
		return 0, 0, 0, 0, 0, 0, 0
	}
	off := (i-g.padH)*g.w + (j - g.padW)
	dLo, dHi = yLo*g.w, yHi*g.w
	sLo = dLo + off
	if sLo < 0 { // only padding columns of the first valid row
		dLo -= sLo
		sLo = 0
	}
	if sHi := dHi + off; sHi > g.h*g.w { // only padding columns of the last valid row
		dHi -= sHi - g.h*g.w
	}
	return dLo, dHi, sLo, yLo, yHi, xLo, xHi
}

func im2colFlat[T float32 | float64](g *geom, x, col []T) {
	for ci := 0; ci < g.c; ci++ {
		plane := x[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				row := col[((ci*g.kh+i)*g.kw+j)*g.pixels:][:g.pixels]
				dLo, dHi, sLo, yLo, yHi, xLo, xHi := g.flatRange(i, j)
				if yLo >= yHi {
					clear(row)
					continue
				}
				clear(row[:yLo*g.w])
				clear(row[yHi*g.w:])
				copy(row[dLo:dHi], plane[sLo:])
				zeroPad(row, g.w, yLo, yHi, xLo, xHi)
			}
		}
	}
}

func col2imFlat[T float32 | float64](g *geom, col, dx []T) {
	for ci := 0; ci < g.c; ci++ {
		plane := dx[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				row := col[((ci*g.kh+i)*g.kw+j)*g.pixels:][:g.pixels]
				dLo, dHi, sLo, yLo, yHi, xLo, xHi := g.flatRange(i, j)
				if yLo >= yHi {
					continue
				}
				// Entries for padded columns would land on the neighbouring
				// row's edge pixel: zero them, then add the block at once.
				zeroPad(row, g.w, yLo, yHi, xLo, xHi)
				src := row[dLo:dHi]
				dst := plane[sLo : sLo+len(src)]
				if s32, ok := any(src).([]float32); ok {
					addTo32(any(dst).([]float32), s32) // AVX2 where available
					continue
				}
				for k, v := range src {
					dst[k] += v
				}
			}
		}
	}
}

// zeroPad zeroes, in rows [yLo, yHi) of a column-matrix row of width w,
// the columns outside [xLo, xHi).
func zeroPad[T float32 | float64](row []T, w, yLo, yHi, xLo, xHi int) {
	if xLo == 0 && xHi == w {
		return
	}
	row = row[:yHi*w]
	for k := 0; k < xLo; k++ {
		for i := yLo*w + k; i < len(row); i += w {
			row[i] = 0
		}
	}
	for k := xHi; k < w; k++ {
		for i := yLo*w + k; i < len(row); i += w {
			row[i] = 0
		}
	}
}
