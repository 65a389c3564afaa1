package kernels

import (
	"fmt"
	"math"
)

// PackedInt4 is an N x K matrix of 4-bit weights in the narrow range [-7, 7] (two per byte in
// memory) with one non-negative integer scale per group of G consecutive values along K of each
// row (W4A8, in the spirit of llama.cpp's k-quants, whose sub-block scales are integers too).
//
// # Integer contract
//
// The effective int8-domain weight of element (j, k) is scales[j][k/G] * w[j][k]: the real
// weight is sCh[j] * scales[j][g] * w[j][k], where the per-channel float scale sCh[j] goes into
// the requantization multiplier exactly as for PackedInt8. The accumulator is therefore a plain
// int32 sum, bit-identical on every path:
//
//	acc[j] = bias[j] + sum_g scales[j][g] * sum_{k in group g} a[k]*w[j][k]
//
// An exporter turns float per-group scales s[j][g] into this form with sCh[j] = max_g s[j][g] /
// Smax and scales[j][g] = round(s[j][g] / sCh[j]) (for example Smax = 255: 8-bit sub-scales).
// Integer group scales keep the runtime integer-only; the price is the rounding of the
// sub-scales, at most 0.5/scales[j][g] relative (0.2% for the largest group of a row with
// Smax = 255, more for groups with much smaller scales), which the exporter can report.
type PackedInt4 struct {
	n, k, group, groups int
	nib                 []byte  // row-major N x K nibbles (w+8), only when panel is nil
	scales              []int32 // N x groups, only when panel is nil
	sums                []int32 // sum_g scales[j][g] * sum_k w[j][k]
	panel               []byte  // SIMD layout (see packPanel), nil without SIMD
	pscales             []int32 // scales transposed per tile: [tile][group][panelN]
}

// MaxInt4Scale is the largest per-group scale PackInt4 accepts.
const MaxInt4Scale = 1<<15 - 1

// PackInt4 packs an N x K row-major matrix of int4 weights w (each in [-7, 7], one value per
// int8) with group size group (a positive multiple of 8 that divides K) and scales of length
// N*(K/group), row-major, each in [0, MaxInt4Scale]. It returns an error if the input violates
// these rules or if sum_g scales[j][g]*group*7*128 could overflow int32 for some row.
// Weights stored with quant.PackInt4 are unpacked with quant.UnpackInt4 first.
func PackInt4(w []int8, n, k, group int, scales []int32) (*PackedInt4, error) {
	if n <= 0 || k <= 0 {
		return nil, fmt.Errorf("kernels: PackInt4: dimensions %dx%d must be positive", n, k)
	}
	if group <= 0 || group%8 != 0 || k%group != 0 {
		return nil, fmt.Errorf("kernels: PackInt4: group size %d must be a positive multiple of 8 dividing K = %d", group, k)
	}
	if len(w) != n*k {
		return nil, fmt.Errorf("kernels: PackInt4: len(w) = %d, want n*k = %d", len(w), n*k)
	}
	groups := k / group
	if len(scales) != n*groups {
		return nil, fmt.Errorf("kernels: PackInt4: len(scales) = %d, want %d", len(scales), n*groups)
	}
	p := &PackedInt4{n: n, k: k, group: group, groups: groups}
	p.sums = make([]int32, n)
	for j := 0; j < n; j++ {
		var bound, sum int64
		for g := 0; g < groups; g++ {
			s := scales[j*groups+g]
			if s < 0 || s > MaxInt4Scale {
				return nil, fmt.Errorf("kernels: PackInt4: scale [%d][%d] = %d outside [0,%d]", j, g, s, MaxInt4Scale)
			}
			var gs int64
			for kk := g * group; kk < (g+1)*group; kk++ {
				v := w[j*k+kk]
				if v < -7 || v > 7 {
					return nil, fmt.Errorf("kernels: PackInt4: weight [%d][%d] = %d outside [-7,7]", j, kk, v)
				}
				gs += int64(v)
			}
			bound += int64(s) * int64(group) * 7 * 128
			sum += int64(s) * gs
		}
		if bound > math.MaxInt32 {
			return nil, fmt.Errorf("kernels: PackInt4: row %d: scales too large, the accumulator could overflow int32", j)
		}
		p.sums[j] = int32(sum)
	}
	// One 4-bit copy stays resident: the SIMD panel (with the scales transposed per tile), or
	// row-major nibbles and scales without SIMD; the portable path reads whichever exists (at,
	// scale), so no int8 copy of the weights and one copy of the scales is kept.
	if haveSIMD {
		p.packPanel(w, scales)
	} else {
		p.scales = append([]int32(nil), scales...)
		p.nib = make([]byte, (n*k+1)/2)
		for i, v := range w {
			p.nib[i/2] |= byte(v+8) << (4 * (i & 1))
		}
	}
	return p, nil
}

// packPanel builds the SIMD layout: per tile of panelN rows and per block of 8 values along
// K, 64 bytes; byte c*4+b holds w[c][8q+b]+8 in its low nibble and w[c][8q+4+b]+8 in its high
// nibble (offset binary, so the unpacked bytes are unsigned 1..15 and the kernels subtract 8
// times the activation sums). Scales are transposed to [tile][group][panelN].
func (p *PackedInt4) packPanel(w []int8, scales []int32) {
	np := (p.n + panelN - 1) / panelN * panelN
	blocks := p.k / 8
	p.panel = make([]byte, np/panelN*blocks*64)
	p.pscales = make([]int32, np*p.groups)
	for j := 0; j < np; j++ {
		t, c := j/panelN, j%panelN
		for q := 0; q < blocks; q++ {
			for b := 0; b < 4; b++ {
				lo, hi := byte(8), byte(8) // padding rows: weight 0
				if j < p.n {
					lo = byte(w[j*p.k+8*q+b] + 8)
					hi = byte(w[j*p.k+8*q+4+b] + 8)
				}
				p.panel[(t*blocks+q)*64+c*4+b] = lo | hi<<4
			}
		}
		if j < p.n {
			for g := 0; g < p.groups; g++ {
				p.pscales[(t*p.groups+g)*panelN+c] = scales[j*p.groups+g]
			}
		}
	}
}

// at returns weight (j, kk), decoded from the resident 4-bit layout.
func (p *PackedInt4) at(j, kk int) int32 {
	if p.panel == nil {
		i := j*p.k + kk
		return int32(p.nib[i/2]>>(4*(i&1))&15) - 8
	}
	b := p.panel[(j/panelN*(p.k/8)+kk/8)*64+(j%panelN)*4+kk&3]
	return int32(b>>(4*((kk>>2)&1))&15) - 8
}

// scale returns the integer scale of group g of row j.
func (p *PackedInt4) scale(j, g int) int32 {
	if p.pscales != nil {
		return p.pscales[(j/panelN*p.groups+g)*panelN+j%panelN]
	}
	return p.scales[j*p.groups+g]
}

// ResidentBytes returns the memory the packed weights keep: the 4-bit weights (one copy), the
// group scales and the row sums.
func (p *PackedInt4) ResidentBytes() int64 {
	return int64(len(p.panel)) + int64(len(p.nib)) + 4*int64(len(p.scales)+len(p.pscales)+len(p.sums))
}

// N returns the number of output channels.
func (p *PackedInt4) N() int { return p.n }

// K returns the depth.
func (p *PackedInt4) K() int { return p.k }

// GroupSize returns the number of consecutive K values that share a scale.
func (p *PackedInt4) GroupSize() int { return p.group }

// RowSums returns sum_g scales[j][g] * sum_{k in g} w[j][k] for every row j, for folding the
// input zero point into the bias: bias'[j] = bias[j] - zIn*RowSums()[j]. Do not modify it.
func (p *PackedInt4) RowSums() []int32 { return p.sums }

func checkGEMM4(fn string, ldst, ldd int, a []int8, lda, m int, w *PackedInt4, bias []int32) {
	if w == nil {
		panic("kernels: " + fn + ": nil weights")
	}
	checkGEMMDims(fn, ldst, ldd, a, lda, m, w.k, w.n, bias)
}

// GEMMInt4 computes, for i < m and j < N, dst[i*ldd+j] = epilogue(acc) with acc as in the
// PackedInt4 integer contract for activation row a[i*lda:]. m = 1 is the GEMV of batch-1
// decoding, the case the SIMD paths are tuned for (each row is one pass over the weights).
func GEMMInt4(dst []int8, ldd int, a []int8, lda, m int, w *PackedInt4, bias []int32, rq *Requant) {
	checkGEMM4("GEMMInt4", len(dst), ldd, a, lda, m, w, bias)
	rq.check(w.n, "GEMMInt4")
	p := current.Load()
	bias = biasOrZero(bias, w.n)
	bp := getAcc(w.n)
	for i := 0; i < m; i++ {
		gemv4(p, *bp, a[i*lda:i*lda+w.k], w, bias)
		if p.requant != nil { // the path's vector epilogue (RequantizeInt32)
			p.requant(dst[i*ldd:i*ldd+w.n], *bp, w.n, rq)
		} else {
			requantRow(dst[i*ldd:i*ldd+w.n], *bp, rq)
		}
	}
	accPool.Put(bp)
}

// GEMMInt4Int32 is GEMMInt4 without the epilogue: dst[i*ldd+j] = acc.
func GEMMInt4Int32(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt4, bias []int32) {
	checkGEMM4("GEMMInt4Int32", len(dst), ldd, a, lda, m, w, bias)
	p := current.Load()
	bias = biasOrZero(bias, w.n)
	for i := 0; i < m; i++ {
		gemv4(p, dst[i*ldd:i*ldd+w.n], a[i*lda:i*lda+w.k], w, bias)
	}
}

// gemv4 runs one row, splitting the output channels over threads (chunks of colBlock
// channels) for large matrices.
func gemv4(p *impl, dst []int32, a []int8, w *PackedInt4, bias []int32) {
	if w.n*w.k < parallelMinMACs || w.n < 2*panelN {
		p.gemv4(dst, a, w, bias, 0, w.n)
		return
	}
	chunks := (w.n + colBlock - 1) / colBlock
	t := int4Pool.Get()
	*t = int4Chunks{p: p, dst: dst, a: a, w: w, bias: bias}
	parallelFor(chunks, t)
	*t = int4Chunks{}
	int4Pool.Put(t)
}

// int4Chunks is the parallel task of gemv4: chunk t is channels [t*colBlock, (t+1)*colBlock).
type int4Chunks struct {
	p    *impl
	dst  []int32
	a    []int8
	w    *PackedInt4
	bias []int32
}

var int4Pool = freeList[int4Chunks]{}

func (c *int4Chunks) runTask(t int) {
	c.p.gemv4(c.dst, c.a, c.w, c.bias, t*colBlock, min((t+1)*colBlock, c.w.n))
}

// gemv4Portable: dst[j] = acc[j] for j0 <= j < j1 (dst indexed by j).
func gemv4Portable(dst []int32, a []int8, w *PackedInt4, bias []int32, j0, j1 int) {
	for j := j0; j < j1; j++ {
		acc := bias[j]
		for g := 0; g < w.groups; g++ {
			var s int32
			for kk := g * w.group; kk < (g+1)*w.group; kk++ {
				s += int32(a[kk]) * w.at(j, kk)
			}
			acc += w.scale(j, g) * s
		}
		dst[j] = acc
	}
}
