package infer

import (
	"fmt"
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

// TestMaxPoolSWAR checks the 2x2 max pool (8-lane SWAR, and AVX2 for multiples of 16 channels on
// amd64) against a scalar computation on random and
// extreme values, with and without clamping.
func TestMaxPoolSWAR(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	vals := []int8{-128, -127, -1, 0, 1, 126, 127}
	for _, clampTo := range [][2]int32{{-128, 127}, {-20, 127}, {-128, 33}, {5, 6}} {
		for _, c := range []int{8, 16, 24, 32, 48} {
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

// TestAvgPoolSWAR checks the 8-channel SWAR average pool against the scalar one: extreme and random
// values, padded and strided windows, global pools of more than 256 pixels (lane flushes), more
// channels than one pass sums (264), and clamped outputs.
func TestAvgPoolSWAR(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 7))
	vals := []int8{-128, -127, -1, 0, 1, 126, 127}
	for _, tc := range []struct {
		h, wd, c, kh, kw, s, pad int
		lo, hi                   int32
	}{
		{7, 7, 8, 7, 7, 1, 0, -128, 127},
		{20, 20, 16, 20, 20, 1, 0, -128, 127}, // 400 pixels
		{17, 19, 264, 17, 19, 1, 0, -128, 127},
		{9, 9, 24, 3, 3, 2, 1, -128, 127},
		{6, 5, 8, 2, 2, 2, 0, -20, 33},
		{23, 23, 8, 23, 23, 1, 0, 0, 127}, // 529 pixels: two flushes
	} {
		oh := (tc.h+2*tc.pad-tc.kh)/tc.s + 1
		ow := (tc.wd+2*tc.pad-tc.kw)/tc.s + 1
		st := &step{h: tc.h, wd: tc.wd, c: tc.c, oh: oh, ow: ow, kh: tc.kh, kw: tc.kw, sh: tc.s, sw: tc.s, pt: tc.pad, pl: tc.pad, lo: tc.lo, hi: tc.hi}
		const batch = 2
		for _, mode := range []string{"random", "all -128", "all 127", "mixed"} {
			src := make([]int8, batch*tc.h*tc.wd*tc.c)
			for i := range src {
				switch mode {
				case "random":
					src[i] = int8(r.IntN(256) - 128)
				case "all -128":
					src[i] = -128
				case "all 127":
					src[i] = 127
				default:
					src[i] = vals[r.IntN(len(vals))]
				}
			}
			want := make([]int8, batch*oh*ow*tc.c)
			got := make([]int8, len(want))
			avgPoolScalar(want, src, batch, st, make([]int32, tc.c))
			avgPool(got, src, batch, st, make([]int32, tc.c))
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%+v %s: output %d = %d, want %d", tc, mode, i, got[i], want[i])
				}
			}
		}
	}
}

func BenchmarkAvgPoolGlobal(b *testing.B) {
	for _, tc := range []struct{ h, c int }{{7, 64}, {14, 32}} {
		st := &step{h: tc.h, wd: tc.h, c: tc.c, oh: 1, ow: 1, kh: tc.h, kw: tc.h, sh: 1, sw: 1, lo: -128, hi: 127}
		src := make([]int8, tc.h*tc.h*tc.c)
		dst := make([]int8, tc.c)
		acc := make([]int32, tc.c)
		for _, v := range []struct {
			name string
			f    func([]int8, []int8, int, *step, []int32)
		}{{"swar", avgPool}, {"scalar", avgPoolScalar}} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", tc.h, tc.h, tc.c, v.name), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				for i := 0; i < b.N; i++ {
					v.f(dst, src, 1, st, acc)
				}
			})
		}
	}
}

// TestRoundDivider compares the multiply-shift division with quant.RoundDiv: every numerator an
// average pool can produce (|v| <= 128 d) for divisors 1-300, and random numerators up to the
// bound for divisors up to 2^22.
func TestRoundDivider(t *testing.T) {
	for d := 1; d <= 300; d++ {
		div := newRoundDivider(d)
		for v := -128 * d; v <= 128*d; v++ {
			if got, want := div.roundDiv(int32(v)), quant.RoundDiv(int32(v), int32(d)); got != want {
				t.Fatalf("roundDiv(%d, %d) = %d, want %d", v, d, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		d := 1 + r.IntN(1<<22-1)
		lim := (1<<31 - 1) - d/2
		v := int32(r.IntN(2*lim+1) - lim)
		if i%4 == 0 {
			v = int32(lim) // the extremes
			if i%8 == 0 {
				v = -v
			}
		}
		if got, want := newRoundDivider(d).roundDiv(v), quant.RoundDiv(v, int32(d)); got != want {
			t.Fatalf("roundDiv(%d, %d) = %d, want %d", v, d, got, want)
		}
	}
}
