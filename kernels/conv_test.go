package kernels

import (
	"math/rand/v2"
	"testing"
)

// refConv is a naive direct convolution (int64 sums) with padding reading inZero.
func refConv(src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, depthwise bool) []int32 {
	oh, ow := s.OutH(), s.OutW()
	out := make([]int32, batch*oh*ow*s.OutC)
	for b := 0; b < batch; b++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for oc := 0; oc < s.OutC; oc++ {
					var acc int64
					if bias != nil {
						acc = int64(bias[oc])
					}
					for kh := 0; kh < s.KH; kh++ {
						for kw := 0; kw < s.KW; kw++ {
							iy, ix := oy*s.StrideH-s.PadTop+kh, ox*s.StrideW-s.PadLeft+kw
							for c := 0; c < s.InC; c++ {
								if depthwise && c != oc {
									continue
								}
								x := int64(inZero)
								if iy >= 0 && iy < s.InH && ix >= 0 && ix < s.InW {
									x = int64(src[((b*s.InH+iy)*s.InW+ix)*s.InC+c])
								}
								var wv int8
								if depthwise {
									wv = w[(kh*s.KW+kw)*s.InC+c]
								} else {
									wv = w[oc*s.K()+(kh*s.KW+kw)*s.InC+c]
								}
								acc += x * int64(wv)
							}
						}
					}
					out[((b*oh+oy)*ow+ox)*s.OutC+oc] = int32(acc)
				}
			}
		}
	}
	return out
}

var convShapes = []ConvShape{
	{InH: 28, InW: 28, InC: 1, OutC: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	{InH: 14, InW: 14, InC: 8, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	{InH: 9, InW: 7, InC: 3, OutC: 5, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadTop: 2, PadLeft: 0, PadBottom: 1, PadRight: 1},
	{InH: 5, InW: 6, InC: 17, OutC: 33, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
	{InH: 8, InW: 8, InC: 2, OutC: 3, KH: 5, KW: 5, StrideH: 3, StrideW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
	{InH: 6, InW: 5, InC: 4, OutC: 7, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
	{InH: 4, InW: 4, InC: 1, OutC: 1, KH: 4, KW: 4, StrideH: 1, StrideW: 1},
	{InH: 11, InW: 13, InC: 1, OutC: 21, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	{InH: 9, InW: 10, InC: 2, OutC: 5, KH: 2, KW: 2, StrideH: 1, StrideW: 2, PadTop: 1, PadLeft: 1},
	{InH: 7, InW: 30, InC: 4, OutC: 13, KH: 3, KW: 1, StrideH: 1, StrideW: 1, PadTop: 2, PadBottom: 2},
	{InH: 40, InW: 40, InC: 1, OutC: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
}

func TestConv2DAllPaths(t *testing.T) {
	t.Run("serial", func(t *testing.T) { testConv2D(t) })
	t.Run("threaded", func(t *testing.T) {
		old := parallelMinMACs
		parallelMinMACs = 1
		defer func() { parallelMinMACs = old }()
		testConv2D(t)
	})
}

func testConv2D(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for si, s := range convShapes {
		for _, kind := range []fillKind{fillRandom, fillMin, fillMax} {
			batch := 1 + r.IntN(3)
			src := make([]int8, 3+batch*s.InH*s.InW*s.InC)[3:] // unaligned
			fillInt8(r, src, kind, false)
			wraw := make([]int8, s.OutC*s.K())
			fillInt8(r, wraw, kind, true)
			w, err := PackInt8(wraw, s.OutC, s.K())
			if err != nil {
				t.Fatal(err)
			}
			inZero := int8(r.IntN(256) - 128)
			if kind == fillMin {
				inZero = -128
			}
			bias := make([]int32, s.OutC)
			for i := range bias {
				bias[i] = int32(r.IntN(2000) - 1000)
			}
			rq := randomRequant(r, s.OutC, s.K())
			want := refRequant(refConv(src, batch, s, inZero, wraw, bias, false), s.OutC, rq)
			for _, p := range allImpls() {
				got := make([]int8, len(want))
				var scratch []int8
				if r.IntN(2) == 0 {
					scratch = make([]int8, Conv2DScratchLen(s))
				}
				conv2D(p, got, src, batch, s, inZero, w, bias, rq, scratch)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s shape %d fill %d: index %d got %d want %d", p.name, si, kind, i, got[i], want[i])
					}
				}
			}
		}
	}
}

var depthwiseShapes = append(append([]ConvShape{}, convShapes...),
	ConvShape{InH: 9, InW: 11, InC: 32, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 10, InW: 7, InC: 37, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 6, InW: 6, InC: 16, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
)

func TestDepthwise(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for si, s := range depthwiseShapes {
		s.OutC = s.InC
		batch := 2
		src := make([]int8, batch*s.InH*s.InW*s.InC)
		fillInt8(r, src, fillRandom, false)
		w := make([]int8, s.KH*s.KW*s.InC)
		fillInt8(r, w, fillRandom, true)
		rq := randomRequant(r, s.InC, s.KH*s.KW)
		inZero := int8(r.IntN(256) - 128)
		var bias []int32
		if si%2 == 0 {
			bias = make([]int32, s.InC)
			for i := range bias {
				bias[i] = int32(r.IntN(20000) - 10000)
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
					t.Fatalf("%s shape %d: index %d got %d want %d", p.name, si, i, got[i], want[i])
				}
			}
		}
	}
}

func TestConvShapeValidate(t *testing.T) {
	good := convShapes[0]
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.OutH() != 28 || good.OutW() != 28 {
		t.Errorf("out %dx%d", good.OutH(), good.OutW())
	}
	bad := []func(*ConvShape){
		func(s *ConvShape) { s.InC = 0 },
		func(s *ConvShape) { s.StrideH = 0 },
		func(s *ConvShape) { s.PadLeft = -1 },
		func(s *ConvShape) { s.PadTop = 3 },
		func(s *ConvShape) { s.InH, s.PadTop, s.PadBottom = 1, 0, 0 },
	}
	for i, f := range bad {
		s := good
		f(&s)
		if s.Validate() == nil {
			t.Errorf("case %d: no error for %+v", i, s)
		}
	}
}
