package infer

import (
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

func BenchmarkMaxPool2x2(b *testing.B) {
	st := &step{h: 28, wd: 28, c: 8, oh: 14, ow: 14, kh: 2, kw: 2, sh: 2, sw: 2, lo: -128, hi: 127}
	src := make([]int8, 28*28*8)
	dst := make([]int8, 14*14*8)
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		maxPool(dst, src, 1, st)
	}
}

func BenchmarkMaxPool2x2x16(b *testing.B) {
	st := &step{h: 14, wd: 14, c: 16, oh: 7, ow: 7, kh: 2, kw: 2, sh: 2, sw: 2, lo: -128, hi: 127}
	src := make([]int8, 14*14*16)
	dst := make([]int8, 7*7*16)
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		maxPool(dst, src, 1, st)
	}
}

// TestMaxPoolSWAR checks the 8-lane SWAR max pool against a scalar computation on random and
// extreme values, with and without clamping.
func TestMaxPoolSWAR(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	vals := []int8{-128, -127, -1, 0, 1, 126, 127}
	for _, clampTo := range [][2]int32{{-128, 127}, {-20, 127}, {-128, 33}, {5, 6}} {
		for _, c := range []int{8, 16, 24} {
			st := &step{h: 6, wd: 4, c: c, oh: 3, ow: 2, kh: 2, kw: 2, sh: 2, sw: 2, lo: clampTo[0], hi: clampTo[1]}
			src := make([]int8, 3*6*4*c)
			for i := range src {
				if r.IntN(2) == 0 {
					src[i] = vals[r.IntN(len(vals))]
				} else {
					src[i] = int8(r.IntN(256) - 128)
				}
			}
			got := make([]int8, 3*3*2*c)
			maxPool(got, src, 3, st)
			for b := 0; b < 3; b++ {
				for oy := 0; oy < 3; oy++ {
					for ox := 0; ox < 2; ox++ {
						for ch := 0; ch < c; ch++ {
							m := int8(-128)
							for dy := 0; dy < 2; dy++ {
								for dx := 0; dx < 2; dx++ {
									m = max(m, src[((b*6+2*oy+dy)*4+2*ox+dx)*c+ch])
								}
							}
							want := int8(quant.Clamp(int32(m), clampTo[0], clampTo[1]))
							if g := got[((b*3+oy)*2+ox)*c+ch]; g != want {
								t.Fatalf("c=%d clamp %v: [%d,%d,%d,%d] = %d, want %d", c, clampTo, b, oy, ox, ch, g, want)
							}
						}
					}
				}
			}
		}
	}
	// max8 on every pair of byte values.
	for a := -128; a < 128; a++ {
		for b := -128; b < 128; b++ {
			x := uint64(uint8(int8(a))) << 24
			y := uint64(uint8(int8(b))) << 24
			if got := int8(max8(x, y) >> 24); got != int8(max(a, b)) {
				t.Fatalf("max8(%d,%d) = %d", a, b, got)
			}
		}
	}
}

func BenchmarkMaxPool2x2Scalar(b *testing.B) {
	st := &step{h: 28, wd: 28, c: 8, oh: 14, ow: 14, kh: 2, kw: 2, sh: 2, sw: 2, lo: -128, hi: 127}
	src := make([]int8, 28*28*8)
	dst := make([]int8, 14*14*8)
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		maxPool2x2Scalar(dst, src, 1, st)
	}
}
