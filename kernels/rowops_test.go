package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// eachPath runs f with every path of this build and CPU selected, then restores the automatic
// choice.
func eachPath(t *testing.T, f func(path string)) {
	t.Helper()
	defer func() {
		if err := SetPath(Paths()[len(Paths())-1]); err != nil {
			t.Fatal(err)
		}
	}()
	for _, p := range Paths() {
		if err := SetPath(p); err != nil {
			t.Fatal(err)
		}
		f(p)
	}
}

// randMultiplier returns a multiplier with M0 in [2^30, 2^31) or an extreme one.
func randMultiplier(r *rand.Rand) quant.Multiplier {
	switch r.IntN(8) {
	case 0:
		return quant.Multiplier{M0: math.MaxInt32, Shift: quant.MaxShift}
	case 1:
		return quant.Multiplier{M0: 1 << 30, Shift: quant.MinShift}
	case 2:
		return quant.Multiplier{}
	}
	return quant.Multiplier{M0: int32(1<<30 + r.Int64N(1<<30)), Shift: int32(r.IntN(quant.MaxShift-quant.MinShift+1) + quant.MinShift)}
}

func TestRowRequantAllPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for trial := 0; trial < 300; trial++ {
		m := randMultiplier(r)
		zp := int32(r.IntN(256) - 128)
		if trial%10 == 0 {
			zp = []int32{-1 << 24, 1 << 24}[trial/10%2]
		}
		lo := int32(r.IntN(256) - 128)
		hi := lo + int32(r.IntN(int(128-lo)))
		if trial%3 == 0 {
			lo, hi = -128, 127
		}
		rq, err := NewRowRequant(m, zp, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		n := 1 + r.IntN(70)
		src := make([]int32, n+1)[1:]
		for i := range src {
			switch r.IntN(6) {
			case 0:
				src[i] = math.MinInt32
			case 1:
				src[i] = math.MaxInt32
			case 2:
				src[i] = int32(r.IntN(511) - 255)
			default:
				src[i] = int32(r.Uint32())
			}
		}
		want := make([]int8, n)
		for i, a := range src {
			want[i] = int8(quant.Requantize(a, m, zp, lo, hi))
		}
		eachPath(t, func(p string) {
			got := make([]int8, n+3)[3:]
			rq.Run(got, src)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: m=%+v zp=%d [%d,%d] acc=%d: got %d, want %d", p, m, zp, lo, hi, src[i], got[i], want[i])
				}
			}
		})
	}
	if _, err := NewRowRequant(quant.Multiplier{M0: 1 << 30}, 0, 5, 4); err == nil {
		t.Error("lo > hi accepted")
	}
	if _, err := NewRowRequant(quant.Multiplier{M0: 1 << 30}, 1<<25, -128, 127); err == nil {
		t.Error("zero point 2^25 accepted")
	}
}

func TestDequantizeInt32AllPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for _, n := range []int{1, 7, 8, 9, 31, 256, 257} {
		src, sc := make([]int32, n), make([]float32, n)
		for i := range src {
			src[i] = int32(r.Uint32())
			sc[i] = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(80)-40)))
			switch i % 11 {
			case 3:
				src[i] = math.MinInt32
			case 4:
				src[i] = math.MaxInt32
			case 5:
				sc[i] = math.SmallestNonzeroFloat32
			case 6:
				sc[i] = float32(math.Inf(1))
				src[i] = 0
			}
		}
		want := make([]float32, n)
		for i := range src {
			want[i] = sc[i] * float32(src[i])
		}
		eachPath(t, func(p string) {
			got := make([]float32, n)
			DequantizeInt32(got, src, sc)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: n=%d %v*%d: got %v, want %v", p, n, sc[i], src[i], got[i], want[i])
				}
			}
		})
	}
}

// normRef is NormRequant's formula with Go's integer division.
func normRef(q int8, zIn int32, shift uint, r uint64, m quant.Multiplier, neg bool, zOut int32) int8 {
	x := (int64(q) - int64(zIn)) << shift
	a := x
	if a < 0 {
		a = -a
	}
	d := (uint64(a) + r/2) / r
	t := int64(d)
	if x < 0 {
		t = -t
	}
	t = min(max(t, math.MinInt32), math.MaxInt32)
	y := int64(quant.MultiplyByQuantizedMultiplier(int32(t), m.M0, m.Shift))
	if neg {
		y = -y
	}
	return int8(min(max(y+int64(zOut), -128), 127))
}

func TestNormRequantAllPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for trial := 0; trial < 400; trial++ {
		n := 1 + r.IntN(70)
		if trial%4 == 0 {
			n = 64
		}
		ms, neg := make([]quant.Multiplier, n), make([]bool, n)
		for i := range ms {
			ms[i] = randMultiplier(r)
			if trial%2 == 0 { // realistic: M about |gain|*2^-S/sOut
				ms[i] = quant.Multiplier{M0: int32(1<<30 + r.Int64N(1<<30)), Shift: int32(r.IntN(8) - 26)}
			}
			neg[i] = r.IntN(3) == 0
		}
		shift := r.IntN(46)
		if trial%2 == 0 {
			shift = 16 + r.IntN(14)
		}
		zIn, zOut := int32(r.IntN(256)-128), int32(r.IntN(256)-128)
		if trial%17 == 0 {
			zIn, zOut = -128, 127
		}
		p, err := NewNormRequant(ms, neg, shift, zIn, zOut)
		if err != nil {
			t.Fatal(err)
		}
		var rms uint64
		switch trial % 5 {
		case 0:
			rms = 1
		case 1:
			rms = 1<<32 - 1
		case 2:
			rms = 1 + r.Uint64N(1<<24)
		default:
			rms = 1 + r.Uint64N(1<<32-1)
		}
		src := make([]int8, n+1)[1:]
		for i := range src {
			src[i] = int8(r.IntN(256) - 128)
			if i%9 == 0 {
				src[i] = []int8{-128, 127, int8(min(max(zIn, -128), 127))}[r.IntN(3)]
			}
		}
		want := make([]int8, n)
		for i, q := range src {
			want[i] = normRef(q, zIn, uint(shift), rms, ms[i], neg[i], zOut)
		}
		eachPath(t, func(path string) {
			got := make([]int8, n+1)[1:]
			p.Run(got, src, rms)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: n=%d ch %d q=%d zIn=%d shift=%d r=%d m=%+v neg=%v zOut=%d: got %d, want %d",
						path, n, i, src[i], zIn, shift, rms, ms[i], neg[i], zOut, got[i], want[i])
				}
			}
		})
	}
	if _, err := NewNormRequant(make([]quant.Multiplier, 2), make([]bool, 1), 20, 0, 0); err == nil {
		t.Error("mismatched signs accepted")
	}
	if _, err := NewNormRequant(nil, nil, 20, 128, 0); err == nil {
		t.Error("zero point 128 accepted")
	}
	if _, err := NewNormRequant(nil, nil, 46, 0, 0); err == nil {
		t.Error("shift 46 accepted")
	}
}
