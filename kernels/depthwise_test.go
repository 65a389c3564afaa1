package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestDepthwiseWide checks every path's depthwise convolution against the independent
// reference (refConv, refRequant) on shapes with 16, 32 and 48 channels (the lane-parallel
// kernels' blocks): 3x3 stride 1 and 2 with padding, odd and even kernel widths, asymmetric
// padding, output rows of 1 to 4+ pixels (the kernels' 4-pixel groups and their tails).
func TestDepthwiseWide(t *testing.T) {
	shapes := []ConvShape{
		{InH: 28, InW: 28, InC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InH: 14, InW: 13, InC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InH: 7, InW: 9, InC: 48, KH: 3, KW: 3, StrideH: 1, StrideW: 2, PadTop: 0, PadLeft: 1, PadBottom: 2, PadRight: 0},
		{InH: 8, InW: 8, InC: 16, KH: 2, KW: 2, StrideH: 1, StrideW: 1},
		{InH: 9, InW: 6, InC: 32, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{InH: 5, InW: 5, InC: 16, KH: 3, KW: 1, StrideH: 1, StrideW: 1, PadTop: 1, PadBottom: 1},
		{InH: 3, InW: 7, InC: 16, KH: 1, KW: 4, StrideH: 1, StrideW: 3, PadLeft: 1, PadRight: 2},
		{InH: 5, InW: 5, InC: 32, KH: 5, KW: 5, StrideH: 1, StrideW: 1},
		{InH: 6, InW: 3, InC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	}
	r := rand.New(rand.NewPCG(21, 22))
	for si, s := range shapes {
		s.OutC = s.InC
		for _, batch := range []int{1, 3} {
			src := make([]int8, batch*s.InH*s.InW*s.InC)
			fillInt8(r, src, fillRandom, false)
			if si == 0 {
				fillInt8(r, src, fillMixed, false)
			}
			w := make([]int8, s.KH*s.KW*s.InC)
			fillInt8(r, w, fillRandom, true)
			rq := randomRequant(r, s.InC, s.KH*s.KW)
			inZero := int8(r.IntN(256) - 128)
			var bias []int32
			if batch == 1 {
				bias = make([]int32, s.InC)
				for i := range bias {
					bias[i] = int32(r.IntN(200000) - 100000)
				}
			}
			want := refRequant(refConv(src, batch, s, inZero, w, bias, true), s.InC, rq)
			for _, p := range allImpls() {
				got := make([]int8, len(want))
				if p.depthwise != nil {
					p.depthwise(got, src, batch, s, inZero, w, bias, rq)
				} else {
					depthwise(got, src, batch, s, inZero, w, bias, rq)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s shape %d batch %d: index %d got %d want %d", p.name, si, batch, i, got[i], want[i])
					}
				}
			}
		}
	}
}
