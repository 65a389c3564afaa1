package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// TestQuantizeFloat32 compares QuantizeFloat32 on every path with quant.QuantizeValue on random
// values, exact ties (k+0.5 times the scale), values next to ties, huge and tiny magnitudes,
// signed zeros and, in separate inputs, NaN and infinities.
func TestQuantizeFloat32(t *testing.T) {
	defer SetPath(Path())
	r := rand.New(rand.NewPCG(51, 52))
	for _, tc := range []struct {
		scale          float32
		zp, qmin, qmax int32
	}{{1.0 / 255, -128, -128, 127}, {0.0123, 5, -128, 127}, {0.5, 0, -20, 127}, {3e-8, -3, -128, 10}, {1, 127, -128, 127}} {
		for trial := 0; trial < 4; trial++ {
			n := 1 + r.IntN(300)
			src := make([]float32, n)
			for i := range src {
				switch r.IntN(8) {
				case 0: // a tie: (k + 0.5) * scale
					src[i] = (float32(r.IntN(400)-200) + 0.5) * tc.scale
				case 1: // next to a tie
					v := (float32(r.IntN(400)-200) + 0.5) * tc.scale
					src[i] = math.Nextafter32(v, float32(math.Inf(2*r.IntN(2)-1)))
				case 2:
					src[i] = float32(r.NormFloat64() * 1e30)
				case 3:
					src[i] = float32(r.NormFloat64() * 1e-30)
				case 4:
					src[i] = float32(math.Copysign(0, float64(r.IntN(2)*2-1)))
				default:
					src[i] = float32(r.NormFloat64()) * tc.scale * 150
				}
			}
			switch trial {
			case 2:
				src[r.IntN(n)] = float32(math.NaN())
			case 3:
				src[r.IntN(n)] = float32(math.Inf(2*r.IntN(2) - 1))
			}
			want := make([]int8, n)
			for i, v := range src {
				want[i] = int8(quant.QuantizeValue(v, tc.scale, tc.zp, tc.qmin, tc.qmax))
			}
			if got := AllFinite(src); got != (trial < 2) {
				t.Fatalf("AllFinite = %v at trial %d", got, trial)
			}
			for _, p := range Paths() {
				if err := SetPath(p); err != nil {
					t.Fatal(err)
				}
				got := make([]int8, n)
				QuantizeFloat32(got, src, tc.scale, tc.zp, tc.qmin, tc.qmax)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("path %s scale %v zp %d: x = %v (x/scale = %v): got %d want %d", p, tc.scale, tc.zp, src[i], src[i]/tc.scale, got[i], want[i])
					}
				}
			}
		}
	}
}

func BenchmarkQuantizeFloat32(b *testing.B) {
	src := make([]float32, 784)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range src {
		src[i] = r.Float32()
	}
	dst := make([]int8, len(src))
	b.SetBytes(int64(4 * len(src)))
	for range b.N {
		QuantizeFloat32(dst, src, 1.0/255, -128, -128, 127)
	}
}
