//go:build !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRequantNEON checks the NEON epilogue against quant.Requantize on extreme inputs.
func TestRequantNEON(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	const rows, n = 64, 64
	src := make([]int32, rows*n)
	m0 := make([]int32, n)
	sh := make([]int32, n)
	for i := range src {
		switch i % 7 {
		case 0:
			src[i] = math.MaxInt32
		case 1:
			src[i] = math.MinInt32
		case 2:
			src[i] = int32(r.IntN(2001) - 1000)
		default:
			src[i] = int32(r.Uint32())
		}
	}
	for c := range m0 {
		sh[c] = int32(r.IntN(62) - 31)
		switch c % 3 {
		case 0:
			m0[c] = 1<<31 - 1
		case 1:
			m0[c] = 1 << 30
		default:
			m0[c] = int32(1<<30 + r.Int64N(1<<30))
		}
	}
	for _, zp := range []int32{-128, 0, 127, math.MinInt32 + 128, math.MaxInt32 - 127} {
		rq := &Requant{M0: m0, Shift: sh, ZeroPoint: zp, Min: -128, Max: 127}
		if zp == 0 {
			rq.Min, rq.Max = 0, 6
		}
		got := make([]int8, rows*n)
		requantNEON(&got[0], n, &src[0], n, rows, &m0[0], &sh[0], n, int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max))
		want := refRequant(src, n, rq)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("zp %d: [%d] acc %d m0 %d shift %d: got %d want %d", zp, i, src[i], m0[i%n], sh[i%n], got[i], want[i])
			}
		}
	}
}
