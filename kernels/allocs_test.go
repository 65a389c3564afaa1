package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestNoAllocs holds every public compute entry point to zero allocations per call after a
// warm-up call, on every path, serial and with the threaded driver forced on.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r := rand.New(rand.NewPCG(21, 22))
	type call struct {
		name string
		fn   func()
	}
	var calls []call
	add := func(name string, fn func()) { calls = append(calls, call{name, fn}) }
	for _, sh := range [][3]int{{1, 10, 784}, {2, 37, 70}, {16, 10, 784}, {64, 64, 64}, {130, 300, 33}} {
		m, n, k := sh[0], sh[1], sh[2]
		a := make([]int8, m*k)
		fillInt8(r, a, fillRandom, false)
		wraw := make([]int8, n*k)
		fillInt8(r, wraw, fillRandom, true)
		w, _ := PackInt8(wraw, n, k)
		rq := randomRequant(r, n, k)
		dst := make([]int8, m*n)
		dst32 := make([]int32, m*n)
		bias := make([]int32, n)
		add(fmt.Sprintf("GEMMInt8 %dx%dx%d", m, n, k), func() { GEMMInt8(dst, n, a, k, m, w, bias, rq) })
		add(fmt.Sprintf("GEMMInt8 nil bias %dx%dx%d", m, n, k), func() { GEMMInt8(dst, n, a, k, m, w, nil, rq) })
		add(fmt.Sprintf("GEMMInt8Int32 %dx%dx%d", m, n, k), func() { GEMMInt8Int32(dst32, n, a, k, m, w, bias) })
		add(fmt.Sprintf("RequantizeInt32 %dx%d", m, n), func() { RequantizeInt32(dst, dst32, n, rq) })
	}
	for _, s := range append(convShapes[:len(convShapes):len(convShapes)],
		ConvShape{InH: 28, InW: 28, InC: 1, OutC: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		ConvShape{InH: 14, InW: 14, InC: 8, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}) {
		for _, batch := range []int{1, 3} {
			src := make([]int8, batch*s.InH*s.InW*s.InC)
			fillInt8(r, src, fillRandom, false)
			wraw := make([]int8, s.OutC*s.K())
			fillInt8(r, wraw, fillRandom, true)
			w, _ := PackInt8(wraw, s.OutC, s.K())
			rq := randomRequant(r, s.OutC, s.K())
			dst := make([]int8, batch*s.OutH()*s.OutW()*s.OutC)
			scratch := make([]int8, Conv2DScratchLen(s))
			add(fmt.Sprintf("Conv2DInt8 %+v b%d", s, batch), func() { Conv2DInt8(dst, src, batch, s, -3, w, nil, rq, scratch) })
			d := s
			d.OutC = d.InC
			dw := make([]int8, d.KH*d.KW*d.InC)
			fillInt8(r, dw, fillRandom, true)
			drq := randomRequant(r, d.OutC, d.KH*d.KW)
			ddst := make([]int8, batch*d.OutH()*d.OutW()*d.OutC)
			add(fmt.Sprintf("DepthwiseConv2DInt8 %+v b%d", d, batch), func() { DepthwiseConv2DInt8(ddst, src, batch, d, 5, dw, nil, drq) })
		}
	}
	for _, sh := range [][3]int{{1, 64, 256}, {2, 200, 512}} {
		m, n, k := sh[0], sh[1], sh[2]
		w4 := make([]int8, n*k)
		for i := range w4 {
			w4[i] = int8(r.IntN(15) - 7)
		}
		scales := make([]int32, n*k/64)
		for i := range scales {
			scales[i] = int32(r.IntN(300))
		}
		w, err := PackInt4(w4, n, k, 64, scales)
		if err != nil {
			t.Fatal(err)
		}
		a := make([]int8, m*k)
		fillInt8(r, a, fillRandom, false)
		rq := randomRequant(r, n, k)
		dst := make([]int8, m*n)
		dst32 := make([]int32, m*n)
		add(fmt.Sprintf("GEMMInt4 %dx%dx%d", m, n, k), func() { GEMMInt4(dst, n, a, k, m, w, nil, rq) })
		add(fmt.Sprintf("GEMMInt4Int32 %dx%dx%d", m, n, k), func() { GEMMInt4Int32(dst32, n, a, k, m, w, nil) })
	}
	for _, s := range fusedShapes {
		for _, pool := range []bool{false, true} {
			if pool && (s.OutH() < 2 || s.OutW() < 2) {
				continue
			}
			const batch = 2
			src := make([]int8, batch*s.InH*s.InW*s.InC)
			fillInt8(r, src, fillRandom, false)
			u := make([]byte, len(src))
			wraw := make([]int8, s.OutC*s.K())
			fillInt8(r, wraw, fillRandom, true)
			w, _ := PackInt8(wraw, s.OutC, s.K())
			f, err := NewFusedConv(s, pool, -128, w, nil, randomRequant(r, s.OutC, s.K()))
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]int8, batch*f.OutH()*f.OutW()*s.OutC)
			var sc FusedScratch
			add(fmt.Sprintf("FusedConv.Run %+v pool %v", s, pool), func() { f.Run(dst, src, batch, &sc) })
			add(fmt.Sprintf("FusedConv.RunShifted %+v pool %v", s, pool), func() { f.RunShifted(dst, u, batch, &sc) })
		}
	}
	fsrc := make([]float32, 789)
	for i := range fsrc {
		fsrc[i] = float32(r.NormFloat64())
	}
	fdst := make([]int8, len(fsrc))
	add("QuantizeFloat32", func() { QuantizeFloat32(fdst, fsrc, 0.02, 3, -128, 127) })
	add("AllFinite", func() { AllFinite(fsrc) })
	saved, savedMin := current.Load(), parallelMinMACs
	defer func() { current.Store(saved); parallelMinMACs = savedMin }()
	for _, threaded := range []bool{false, true} {
		parallelMinMACs = savedMin
		if threaded {
			parallelMinMACs = 1
		}
		for _, p := range allImpls() {
			current.Store(p)
			for _, c := range calls {
				c.fn() // warm-up: pools and lazily built weight layouts
				c.fn()
				if got := testing.AllocsPerRun(20, c.fn); got != 0 {
					t.Errorf("%s threaded=%v %s: %v allocations per call, want 0", p.name, threaded, c.name, got)
				}
			}
		}
	}
}
