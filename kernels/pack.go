package kernels

import (
	"fmt"
	"sync/atomic"
)

// Panel geometry shared by the SIMD paths: weights are stored in tiles of panelN output
// channels; inside a tile, K is split in groups of 4 consecutive values and the 4 bytes of
// each of the panelN channels are stored together, so one group of one tile is 64 bytes
// (one zmm register, two ymm or four NEON q registers):
//
//	panel[((t*kp/4+g)*panelN+c)*4+b] = w[t*panelN+c][4*g+b]
//
// K is padded to kp (a multiple of 4) and N to a multiple of panelN with zero bytes. On amd64
// the stored byte is w^0x80 = w+128 as u8 (panelXor), the unsigned operand of VPDPBUSD; the
// padding stays 0 so that it contributes nothing.
const panelN = 16

// PackedInt8 is an N x K int8 weight matrix (row n = output channel n, K contiguous) packed
// for the kernels. It is immutable after PackInt8 and safe for concurrent use.
type PackedInt8 struct {
	n, k   int
	kp, np int     // K rounded up to 4, N rounded up to panelN
	w      []int8  // row-major N x K copy, only without SIMD (panel nil): one copy stays resident
	panel  []int8  // tiled layout for the SIMD paths (nil without SIMD)
	sums   []int32 // sum_k w[n][k]
	conv   atomic.Pointer[convPanel]
	w2     atomic.Pointer[[]int64] // channel pairs for the portable path, built on first use
	w16    atomic.Pointer[[]int16] // the panel widened to int16 for the AVX2 GEMM, built on first use
}

// panel16 returns the SIMD panel with every stored byte zero-extended to int16 (same layout,
// twice the bytes of the int8 panel), building it on first use. Only the AVX2 GEMM
// kernel reads it (avx2w16x6x16: its inner loop then loads the weights instead of widening
// them, which runs near the VPMADDWD peak); the AVX2 GEMV and the other paths never build it.
// Safe for concurrent use.
func (p *PackedInt8) panel16() []int16 {
	if b := p.w16.Load(); b != nil {
		return *b
	}
	b := make([]int16, len(p.panel))
	for i, v := range p.panel {
		b[i] = int16(uint8(v))
	}
	p.w16.Store(&b)
	return b
}

// pairs returns the weights of the portable GEMM (portable.go), building them on first use
// (the portable path may be selected only at run time). Channel pair q holds channels 2q and
// 2q+1 as w[2q][k] + w[2q+1][k]<<32 (the missing channel of an odd N reads as 0). The first
// 4*nq pairs (nq = pairs/4) are interleaved by groups of four: pair 4g+t at depth k is at
// [4g*K + 4k + t]; the remaining pairs follow, one after the other: pair q at [q*K + k].
// Safe for concurrent use.
func (p *PackedInt8) pairs() []int64 {
	if b := p.w2.Load(); b != nil {
		return *b
	}
	np := (p.n + 1) / 2
	nq := np / 4
	b := make([]int64, np*p.k)
	for q := 0; q < np; q++ {
		for kk := 0; kk < p.k; kk++ {
			v := int64(p.at(2*q, kk))
			if 2*q+1 < p.n {
				v += int64(p.at(2*q+1, kk)) << 32
			}
			if q < 4*nq {
				b[(q&^3)*p.k+4*kk+q&3] = v
			} else {
				b[q*p.k+kk] = v
			}
		}
	}
	p.w2.Store(&b)
	return b
}

// convPanel is the weight layout of the implicit convolution (simd.go, convImplicit): K
// groups of 4 bytes, one per kernel row, holding the kwc <= 4 weights of that row then zeros;
// on amd64 column n (the first padding column) holds u8 ones at the real positions, so that
// the kernel also computes the patch sum.
type convPanel struct {
	kh, kwc int
	panel   []int8
}

// implicitPanel returns the convPanel for kernel height kh and row length kwc (kh*kwc == K),
// building it on first use. Safe for concurrent use.
func (p *PackedInt8) implicitPanel(kh, kwc int) []int8 {
	if cp := p.conv.Load(); cp != nil && cp.kh == kh && cp.kwc == kwc {
		return cp.panel
	}
	np := (p.n + panelN - 1) / panelN * panelN
	panel := make([]int8, np*kh*4)
	for j := 0; j <= p.n && j < np; j++ {
		t, c := j/panelN, j%panelN
		for h := 0; h < kh; h++ {
			for b := 0; b < kwc; b++ {
				v := int8(1) // the ones column
				if j < p.n {
					v = int8(uint8(p.at(j, h*kwc+b)) ^ panelXor)
				}
				panel[((t*kh+h)*panelN+c)*4+b] = v
			}
		}
	}
	p.conv.Store(&convPanel{kh: kh, kwc: kwc, panel: panel})
	return panel
}

// PackInt8 copies an N x K row-major weight matrix into the packed layout. It returns an error
// if len(w) != n*k, a dimension is not positive, or a weight is -128 (weights must be in the
// narrow range [-127, 127]: the SIMD products rely on it).
func PackInt8(w []int8, n, k int) (*PackedInt8, error) {
	if n <= 0 || k <= 0 {
		return nil, fmt.Errorf("kernels: PackInt8: dimensions %dx%d must be positive", n, k)
	}
	if len(w) != n*k {
		return nil, fmt.Errorf("kernels: PackInt8: len(w) = %d, want n*k = %d", len(w), n*k)
	}
	if k > 1<<16 {
		// 2^16 * 128 * 127 < 2^31: accumulators cannot overflow int32 below this depth.
		return nil, fmt.Errorf("kernels: PackInt8: K = %d exceeds the maximum 65536", k)
	}
	p := &PackedInt8{n: n, k: k, kp: (k + 3) &^ 3, np: (n + panelN - 1) / panelN * panelN}
	p.sums = make([]int32, n)
	for j := 0; j < n; j++ {
		var s int32
		for kk, v := range w[j*k : (j+1)*k] {
			if v == -128 {
				return nil, fmt.Errorf("kernels: PackInt8: weight [%d][%d] is -128, outside [-127,127]", j, kk)
			}
			s += int32(v)
		}
		p.sums[j] = s
	}
	if !haveSIMD {
		p.w = make([]int8, n*k)
		copy(p.w, w)
	} else {
		// The AMX GEMM (K >= amxGemmMinK) reads whole 64-byte K chunks of the last tile: up to
		// 15 groups of 64 bytes past the panel's end (multiplied by zero activations), kept in
		// capacity.
		slack := 0
		if p.kp >= amxGemmMinK {
			slack = ((p.kp+63)&^63 - p.kp) * panelN
		}
		p.panel = alignedInt8(p.np*p.kp + slack)[:p.np*p.kp]
		for j := 0; j < n; j++ {
			t, c := j/panelN, j%panelN
			for kk, v := range w[j*k : (j+1)*k] {
				g, b := kk/4, kk%4
				p.panel[((t*p.kp/4+g)*panelN+c)*4+b] = int8(uint8(v) ^ panelXor)
			}
		}
	}
	return p, nil
}

// at returns weight (j, kk), from the row-major copy or decoded from the SIMD panel (the one
// resident copy).
func (p *PackedInt8) at(j, kk int) int8 {
	if p.panel == nil {
		return p.w[j*p.k+kk]
	}
	t, c := j/panelN, j%panelN
	return int8(uint8(p.panel[((t*p.kp/4+kk/4)*panelN+c)*4+kk%4]) ^ panelXor)
}

// ResidentBytes returns the memory the packed weights keep (the SIMD panel or, without SIMD, the
// row-major copy; row sums; and the lazily built layouts built so far).
func (p *PackedInt8) ResidentBytes() int64 {
	n := int64(len(p.w)) + 4*int64(len(p.sums))
	if p.panel != nil {
		n += int64(cap(p.panel)) // with the AMX slack
	}
	if b := p.w2.Load(); b != nil {
		n += 8 * int64(len(*b))
	}
	if b := p.w16.Load(); b != nil {
		n += 2 * int64(len(*b))
	}
	return n
}

// N returns the number of output channels (rows of the weight matrix).
func (p *PackedInt8) N() int { return p.n }

// K returns the depth (columns of the weight matrix).
func (p *PackedInt8) K() int { return p.k }

// RowSums returns sum_k w[n][k] for every output channel n, used to fold the input zero point
// into the bias: bias'[n] = bias[n] - zIn*RowSums()[n]. The slice must not be modified.
func (p *PackedInt8) RowSums() []int32 { return p.sums }
