package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// fusedShapes adds shapes that exercise the fused kernels' edges: channel counts around the
// 16-channel tile, several tiles, odd pooled widths, rows shorter than one 8-pixel tile, K
// groups that end inside a pixel (KW*InC not a multiple of 4).
var fusedShapes = append(append([]ConvShape{}, convShapes...),
	ConvShape{InH: 7, InW: 7, InC: 32, OutC: 64, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 14, InW: 14, InC: 16, OutC: 32, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 13, InW: 11, InC: 3, OutC: 17, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 6, InW: 3, InC: 5, OutC: 16, KH: 2, KW: 3, StrideH: 1, StrideW: 1, PadLeft: 1, PadRight: 1},
	ConvShape{InH: 10, InW: 22, InC: 1, OutC: 4, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
	// One input channel, 8 or 16 outputs (the AVX-512 VBMI kernel when pooled): the BN CNN's
	// first layer, a conv width that leaves one pooled pixel in the last run of 8, a 2x2 kernel
	// without padding.
	ConvShape{InH: 28, InW: 28, InC: 1, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 10, InW: 19, InC: 1, OutC: 16, KH: 4, KW: 4, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 1, PadBottom: 1, PadRight: 2},
	ConvShape{InH: 7, InW: 33, InC: 1, OutC: 8, KH: 2, KW: 2, StrideH: 1, StrideW: 1},
	// AMX plans (amxShapes): one chunk of 6, 7 or 16 K groups per kernel row, two chunks of 9,
	// three of 16, a 1x1 and a 5x5 kernel, K groups that end inside a pixel, a raster that ends
	// inside the last pair of M tiles, three pairs of channel tiles, a pair and a lone tile.
	ConvShape{InH: 9, InW: 5, InC: 8, OutC: 32, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 6, InW: 11, InC: 24, OutC: 64, KH: 2, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadRight: 1},
	ConvShape{InH: 5, InW: 5, InC: 64, OutC: 48, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	ConvShape{InH: 12, InW: 10, InC: 64, OutC: 96, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
	ConvShape{InH: 10, InW: 9, InC: 5, OutC: 32, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
)

// amxShapes are the fusedShapes that have an AMX plan (TestAMXPlans checks that they do and
// that the others do not): ggml's conv2 (one 16-channel tile), the BN CNN's conv3 and conv2 and
// the shapes above.
var amxShapes = []int{1, len(convShapes), len(convShapes) + 1, len(fusedShapes) - 5, len(fusedShapes) - 4, len(fusedShapes) - 3, len(fusedShapes) - 2, len(fusedShapes) - 1}

// refPool is the 2x2 stride-2 max pool of NHWC int8 images (floor of odd sizes).
func refPool(src []int8, batch, h, w, c int) []int8 {
	oh, ow := h/2, w/2
	out := make([]int8, batch*oh*ow*c)
	for b := 0; b < batch; b++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				for ch := 0; ch < c; ch++ {
					m := int8(-128)
					for dy := 0; dy < 2; dy++ {
						for dx := 0; dx < 2; dx++ {
							m = max(m, src[((b*h+2*y+dy)*w+2*x+dx)*c+ch])
						}
					}
					out[((b*oh+y)*ow+x)*c+ch] = m
				}
			}
		}
	}
	return out
}

// TestFusedConv compares FusedConv on every path (the fused kernels where a path has them, the
// composition of Conv2DInt8 and a pool otherwise) with the naive convolution, the reference
// epilogue and a naive pool.
func TestFusedConv(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for si, s := range fusedShapes {
		for _, kind := range []fillKind{fillRandom, fillMin, fillMax} {
			for _, pool := range []bool{false, true} {
				if pool && (s.OutH() < 2 || s.OutW() < 2) {
					continue
				}
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
				var bias []int32
				if r.IntN(4) > 0 {
					bias = make([]int32, s.OutC)
					for i := range bias {
						bias[i] = int32(r.IntN(2000) - 1000)
					}
				}
				rq := randomRequant(r, s.OutC, s.K())
				if r.IntN(2) == 0 {
					// Right shifts of at most 53 everywhere (else one extreme channel of many
					// keeps the AVX-512 Sat kernels out of most cases).
					for c := range rq.Shift {
						rq.Shift[c] = max(rq.Shift[c], -22)
					}
				}
				want := refRequant(refConv(src, batch, s, inZero, wraw, bias, false), s.OutC, rq)
				if pool {
					want = refPool(want, batch, s.OutH(), s.OutW(), s.OutC)
				}
				f, err := NewFusedConv(s, pool, inZero, w, bias, rq)
				if err != nil {
					t.Fatal(err)
				}
				if n := batch * f.OutH() * f.OutW() * s.OutC; n != len(want) {
					t.Fatalf("shape %d: output size %d, want %d", si, n, len(want))
				}
				for _, p := range allImpls() {
					got := make([]int8, len(want)+5)
					for i := range got {
						got[i] = 99
					}
					var sc FusedScratch
					if p.convPool != nil {
						p.convPool(f, got, src, batch, false, &sc)
					} else {
						f.runUnfused(got, src, batch, &sc)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s shape %d %+v pool %v fill %d: index %d got %d want %d", p.name, si, s, pool, kind, i, got[i], want[i])
						}
					}
					for i := len(want); i < len(got); i++ {
						if got[i] != 99 {
							t.Fatalf("%s shape %d pool %v: wrote past the output (index %d)", p.name, si, pool, i)
						}
					}
					if p.convPool != nil {
						// The same input with its sign bits flipped (RunShifted).
						flipped := make([]int8, len(src))
						for i, v := range src {
							flipped[i] = v ^ -128
						}
						clear(got)
						p.convPool(f, got, flipped, batch, true, &sc)
						for i := range want {
							if got[i] != want[i] {
								t.Fatalf("%s shape %d pool %v shifted: index %d got %d want %d", p.name, si, pool, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestFusedConvRunShifted checks RunShifted (bytes holding value+128) against Run on every
// selectable path.
func TestFusedConvRunShifted(t *testing.T) {
	defer SetPath(Path())
	r := rand.New(rand.NewPCG(41, 42))
	for _, s := range []ConvShape{convShapes[0], fusedShapes[len(fusedShapes)-3]} {
		const batch = 3
		src := make([]int8, batch*s.InH*s.InW*s.InC)
		fillInt8(r, src, fillRandom, false)
		u := make([]byte, len(src))
		for i, v := range src {
			u[i] = byte(v) ^ 0x80
		}
		wraw := make([]int8, s.OutC*s.K())
		fillInt8(r, wraw, fillRandom, true)
		w, _ := PackInt8(wraw, s.OutC, s.K())
		f, err := NewFusedConv(s, true, -128, w, nil, randomRequant(r, s.OutC, s.K()))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int8, batch*f.OutH()*f.OutW()*s.OutC)
		got := make([]int8, len(want))
		var sc FusedScratch
		for _, p := range Paths() {
			if err := SetPath(p); err != nil {
				t.Fatal(err)
			}
			f.Run(want, src, batch, &sc)
			f.RunShifted(got, u, batch, &sc)
			if string(bytesOf8(got)) != string(bytesOf8(want)) {
				t.Fatalf("path %s: RunShifted differs from Run", p)
			}
		}
	}
}

func bytesOf8(v []int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

func TestFusedConvErrors(t *testing.T) {
	s := convShapes[0]
	w, _ := PackInt8(make([]int8, s.OutC*s.K()), s.OutC, s.K())
	rq := &Requant{M0: make([]int32, s.OutC), Shift: make([]int32, s.OutC), Min: -128, Max: 127}
	tiny := ConvShape{InH: 2, InW: 3, InC: 1, OutC: 8, KH: 2, KW: 2, StrideH: 1, StrideW: 1}
	wt, _ := PackInt8(make([]int8, 8*4), 8, 4)
	bad := []struct {
		s    ConvShape
		pool bool
		w    *PackedInt8
		bias []int32
		rq   *Requant
	}{
		{ConvShape{}, false, w, nil, rq},
		{s, false, nil, nil, rq},
		{s, false, w, make([]int32, 3), rq},
		{s, false, w, nil, &Requant{M0: make([]int32, 2), Shift: make([]int32, 2)}},
		{s, false, w, nil, &Requant{M0: make([]int32, s.OutC), Shift: make([]int32, s.OutC), Min: 5, Max: 4}},
		{s, false, w, nil, &Requant{M0: append(make([]int32, s.OutC-1), -1), Shift: make([]int32, s.OutC), Min: -128, Max: 127}},
		{tiny, true, wt, nil, rq},
	}
	for i, c := range bad {
		if _, err := NewFusedConv(c.s, c.pool, 0, c.w, c.bias, c.rq); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

// BenchmarkFusedConv compares the MNIST CNN's conv+pool blocks fused and as Conv2DInt8 plus pool
// (the composition FusedConv falls back to), per image at batch 64.
func BenchmarkFusedConv(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range convShapes[:2] {
		const batch = 64
		src := make([]int8, batch*s.InH*s.InW*s.InC)
		fillInt8(r, src, fillRandom, false)
		wraw := make([]int8, s.OutC*s.K())
		fillInt8(r, wraw, fillRandom, true)
		w, _ := PackInt8(wraw, s.OutC, s.K())
		rq := randomRequant(r, s.OutC, s.K())
		f, err := NewFusedConv(s, true, -128, w, nil, rq)
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]int8, batch*f.OutH()*f.OutW()*s.OutC)
		var sc FusedScratch
		name := fmt.Sprintf("%dx%dx%d-%d", s.InH, s.InW, s.InC, s.OutC)
		b.Run(name+"/fused", func(b *testing.B) {
			cpu := startThreadCPU(b)
			for range b.N {
				f.Run(dst, src, batch, &sc)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/image")
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(float64(ns)/float64(b.N*batch), "cpu-ns/image")
			}
		})
		b.Run(name+"/unfused", func(b *testing.B) {
			cpu := startThreadCPU(b)
			for range b.N {
				f.runUnfused(dst, src, batch, &sc)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/image")
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(float64(ns)/float64(b.N*batch), "cpu-ns/image")
			}
		})
	}
}

// TestFusedScratchShared runs two convolutions with different input zero points and shapes
// through one FusedScratch, alternating and switching paths in between (each path pads the
// image its own way into the same buffer), and compares every result with the reference.
func TestFusedScratchShared(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	type conv struct {
		f    *FusedConv
		src  []int8
		want []int8
	}
	var convs []conv
	for i, s := range []ConvShape{fusedShapes[len(fusedShapes)-5], fusedShapes[len(fusedShapes)-4]} {
		const batch = 2
		src := make([]int8, batch*s.InH*s.InW*s.InC)
		fillInt8(r, src, fillRandom, false)
		wraw := make([]int8, s.OutC*s.K())
		fillInt8(r, wraw, fillRandom, true)
		w, err := PackInt8(wraw, s.OutC, s.K())
		if err != nil {
			t.Fatal(err)
		}
		inZero := int8(-100 + 150*i)
		rq := randomRequant(r, s.OutC, s.K())
		pool := i == 0
		f, err := NewFusedConv(s, pool, inZero, w, nil, rq)
		if err != nil {
			t.Fatal(err)
		}
		want := refRequant(refConv(src, batch, s, inZero, wraw, nil, false), s.OutC, rq)
		if pool {
			want = refPool(want, batch, s.OutH(), s.OutW(), s.OutC)
		}
		convs = append(convs, conv{f, src, want})
	}
	var sc FusedScratch
	impls := allImpls()
	for round := 0; round < 3*len(impls); round++ {
		p := impls[r.IntN(len(impls))]
		for _, i := range []int{0, 0, 1, 1, 0} {
			c := convs[i]
			got := make([]int8, len(c.want))
			if p.convPool != nil {
				p.convPool(c.f, got, c.src, 2, false, &sc)
			} else {
				c.f.runUnfused(got, c.src, 2, &sc)
			}
			for j := range got {
				if got[j] != c.want[j] {
					t.Fatalf("%s conv %d (round %d): index %d got %d want %d", p.name, i, round, j, got[j], c.want[j])
				}
			}
		}
	}
}

// TestFusedConvC16 checks the one-input-channel, 16-output kernel (vnniConvC16Pool on AVX-512
// VNNI) against the naive convolution, epilogue and pool on every path: pooled widths that
// leave 0-3 pixels after the last whole segment of 4, kernels 2x2 to 4x4, multipliers from
// realistic to the largest ones (results far outside int8, clamped) and zero, zero points and
// clamps at both ends, fills at the extremes.
func TestFusedConvC16(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	shapes := []ConvShape{
		{InH: 28, InW: 28, InC: 1, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InH: 5, InW: 9, InC: 1, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InH: 6, InW: 11, InC: 1, OutC: 16, KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadRight: 1},
		{InH: 9, InW: 14, InC: 1, OutC: 16, KH: 4, KW: 4, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 1, PadBottom: 1, PadRight: 2},
		{InH: 4, InW: 7, InC: 1, OutC: 16, KH: 3, KW: 1, StrideH: 1, StrideW: 1, PadTop: 1, PadBottom: 1},
		{InH: 7, InW: 5, InC: 1, OutC: 16, KH: 1, KW: 3, StrideH: 1, StrideW: 1, PadLeft: 1, PadRight: 1},
	}
	for si, s := range shapes {
		for trial := 0; trial < 6; trial++ {
			kind := []fillKind{fillRandom, fillMin, fillMax}[trial%3]
			batch := 1 + r.IntN(3)
			src := make([]int8, 1+batch*s.InH*s.InW)[1:]
			fillInt8(r, src, kind, false)
			wraw := make([]int8, 16*s.K())
			fillInt8(r, wraw, kind, true)
			w, err := PackInt8(wraw, 16, s.K())
			if err != nil {
				t.Fatal(err)
			}
			bias := make([]int32, 16)
			for i := range bias {
				bias[i] = int32(r.IntN(200001) - 100000)
			}
			rq := &Requant{M0: make([]int32, 16), Shift: make([]int32, 16)}
			for c := range rq.M0 {
				switch {
				case c == 0 && trial > 2:
					rq.M0[c], rq.Shift[c] = 0, 0
				case c == 1 && trial > 2:
					rq.M0[c], rq.Shift[c] = math.MaxInt32, quant.MaxShift // right shift 1
				case c == 2 && trial > 2:
					rq.M0[c], rq.Shift[c] = 1<<30+int32(r.IntN(1<<30)), -22 // right shift 53
				default:
					m, err := quant.QuantizeMultiplier(math.Exp(r.Float64()*6-3) / float64(64*s.K()+1))
					if err != nil {
						t.Fatal(err)
					}
					rq.M0[c], rq.Shift[c] = m.M0, m.Shift
				}
			}
			switch trial % 4 {
			case 0:
				rq.ZeroPoint, rq.Min, rq.Max = -128, -128, 127
			case 1:
				rq.ZeroPoint, rq.Min, rq.Max = 127, -128, 127
			case 2:
				rq.ZeroPoint, rq.Min, rq.Max = -20, -20, 100
			default:
				rq.ZeroPoint, rq.Min, rq.Max = int32(r.IntN(256)-128), -128, 127
			}
			inZero := int8(r.IntN(256) - 128)
			want := refPool(refRequant(refConv(src, batch, s, inZero, wraw, bias, false), 16, rq), batch, s.OutH(), s.OutW(), 16)
			f, err := NewFusedConv(s, true, inZero, w, bias, rq)
			if err != nil {
				t.Fatal(err)
			}
			if !f.convC16Eligible() {
				t.Fatalf("shape %d: not eligible for the 16-channel kernel", si)
			}
			for _, p := range allImpls() {
				for _, shifted := range []bool{false, true} {
					in := src
					if shifted {
						in = make([]int8, len(src))
						for i, v := range src {
							in[i] = v ^ -128
						}
					}
					got := make([]int8, len(want)+3)
					for i := range got {
						got[i] = 99
					}
					var sc FusedScratch
					if p.convPool != nil {
						p.convPool(f, got, in, batch, shifted, &sc)
					} else if !shifted {
						f.runUnfused(got, in, batch, &sc)
					} else {
						continue
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s shape %d trial %d shifted %v: index %d (pixel %d, channel %d) got %d want %d", p.name, si, trial, shifted, i, i/16, i%16, got[i], want[i])
						}
					}
					for i := len(want); i < len(got); i++ {
						if got[i] != 99 {
							t.Fatalf("%s shape %d: wrote past the output (index %d)", p.name, si, i)
						}
					}
				}
			}
		}
	}
	// A right shift above 53 leaves the general kernels in charge.
	s := shapes[1]
	w, _ := PackInt8(make([]int8, 16*s.K()), 16, s.K())
	rq := &Requant{M0: make([]int32, 16), Shift: make([]int32, 16), ZeroPoint: -128, Min: -128, Max: 127}
	rq.M0[5], rq.Shift[5] = 1<<30, -23
	f, err := NewFusedConv(s, true, 0, w, nil, rq)
	if err != nil {
		t.Fatal(err)
	}
	if f.convC16Eligible() || f.c16w != nil {
		t.Fatal("right shift 54 accepted by the 16-channel kernel")
	}
}

// TestAMXPlans checks which shapes get an AMX plan: the amxShapes, and no shape with a stride
// above 1, output channels that are not whole 16-channel tiles, fewer than 4 input channels or
// fewer than 64 multiply-adds per output.
func TestAMXPlans(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	want := map[int]bool{}
	for _, i := range amxShapes {
		want[i] = true
	}
	for si, s := range fusedShapes {
		wraw := make([]int8, s.OutC*s.K())
		w, err := PackInt8(wraw, s.OutC, s.K())
		if err != nil {
			t.Fatal(err)
		}
		f, err := NewFusedConv(s, false, 0, w, nil, randomRequant(r, s.OutC, s.K()))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.amx != nil; got != want[si] {
			t.Errorf("shape %d %+v: AMX plan %v, want %v", si, s, got, want[si])
		}
		if f.amx != nil {
			p := f.amx
			if p.chunks*p.cb != 4*f.ng || p.cb > 64 || p.mpairs*32 < s.OutH()*(s.InW+s.PadLeft+s.PadRight) {
				t.Errorf("shape %d: plan %+v does not cover ng %d", si, *p, f.ng)
			}
		}
	}
}
