package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestGEMVAllPaths compares the prepared GEMV (int8 and int4, int8 and int32 outputs, one and
// two threads) with the plain-loop references on every path, on shapes with partial tiles and a
// depth that is not a multiple of 4, and random and extreme inputs.
func TestGEMVAllPaths(t *testing.T) {
	old, oldMin := current.Load(), gemvMinParallel
	defer func() { current.Store(old); gemvMinParallel = oldMin }()
	gemvMinParallel = 1
	r := rand.New(rand.NewPCG(31, 32))
	type tc struct{ n, k, group int }
	for _, c := range []tc{{1, 8, 8}, {16, 64, 32}, {17, 64, 32}, {64, 64, 32}, {100, 96, 32}, {288, 768, 32}, {33, 40, 8}, {50, 13, 0}, {70, 130, 0}, {72, 36, 0}, {200, 20, 0}} {
		for _, kind := range []fillKind{fillRandom, fillMin, fillMax, fillMixed} {
			w := make([]int8, c.n*c.k)
			fillInt8(r, w, kind, true)
			a := make([]int8, c.k+3)[3:]
			fillInt8(r, a, kind, false)
			bias := make([]int32, c.n)
			for i := range bias {
				bias[i] = int32(r.IntN(20001) - 10000)
			}
			rq := randomRequant(r, c.n, c.k*64)
			type variant struct {
				name string
				g    *GEMV
				want []int32
			}
			var vs []variant
			p8, err := PackInt8(w, c.n, c.k)
			if err != nil {
				t.Fatal(err)
			}
			g8, err := NewGEMVInt8(p8, bias, rq)
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, variant{"int8", g8, refGEMM(a, c.k, 1, w, c.n, c.k, bias)})
			if c.group > 0 {
				w4 := make([]int8, len(w))
				for i := range w4 {
					w4[i] = int8(r.IntN(15) - 7)
					if kind != fillRandom {
						w4[i] = int8(7 - 14*(i%2))
					}
				}
				scales := make([]int32, c.n*(c.k/c.group))
				for i := range scales {
					scales[i] = int32(r.IntN(256))
				}
				p4, err := PackInt4(w4, c.n, c.k, c.group, scales)
				if err != nil {
					t.Fatal(err)
				}
				g4, err := NewGEMVInt4(p4, bias, rq)
				if err != nil {
					t.Fatal(err)
				}
				vs = append(vs, variant{"int4", g4, refInt4(a, w4, c.n, c.k, c.group, scales, bias)})
			}
			for _, v := range vs {
				want8 := refRequant(v.want, c.n, rq)
				for _, p := range allImpls() {
					current.Store(p)
					for _, threads := range []int{1, 2} {
						sc := make([]int32, v.g.ScratchLen())
						got := make([]int32, c.n)
						v.g.RunInt32(got, a, sc, threads)
						for j := range got {
							if got[j] != v.want[j] {
								t.Fatalf("%s %s %dx%d fill %d threads %d: acc[%d] = %d, want %d", p.name, v.name, c.n, c.k, kind, threads, j, got[j], v.want[j])
							}
						}
						got8 := make([]int8, c.n)
						v.g.Run(got8, a, sc, threads)
						for j := range got8 {
							if got8[j] != want8[j] {
								t.Fatalf("%s %s %dx%d fill %d threads %d: out[%d] = %d, want %d", p.name, v.name, c.n, c.k, kind, threads, j, got8[j], want8[j])
							}
						}
					}
				}
			}
		}
	}
}

func TestGEMVErrors(t *testing.T) {
	p, err := PackInt8(make([]int8, 32), 4, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewGEMVInt8(nil, nil, nil); err == nil {
		t.Error("nil weights accepted")
	}
	if _, err := NewGEMVInt4(nil, nil, nil); err == nil {
		t.Error("nil int4 weights accepted")
	}
	if _, err := NewGEMVInt8(p, make([]int32, 3), nil); err == nil {
		t.Error("short bias accepted")
	}
	bad := &Requant{M0: []int32{1, 1, -1, 1}, Shift: make([]int32, 4), Min: -128, Max: 127}
	if _, err := NewGEMVInt8(p, nil, bad); err == nil {
		t.Error("invalid multiplier accepted")
	}
	g, err := NewGEMVInt8(p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(){
		"no epilogue":   func() { g.Run(make([]int8, 4), make([]int8, 8), make([]int32, g.ScratchLen()), 1) },
		"short a":       func() { g.RunInt32(make([]int32, 4), make([]int8, 7), make([]int32, g.ScratchLen()), 1) },
		"short dst":     func() { g.RunInt32(make([]int32, 3), make([]int8, 8), make([]int32, g.ScratchLen()), 1) },
		"short scratch": func() { g.RunInt32(make([]int32, 4), make([]int8, 8), make([]int32, g.ScratchLen()-1), 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestPackInt8OneCopy: PackInt8 keeps one copy of the weights (the SIMD panel, or the row-major
// copy without SIMD): ResidentBytes is at most one padded copy plus the row sums, and every
// weight decodes back from it.
func TestPackInt8OneCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, c := range [][2]int{{1, 1}, {17, 13}, {64, 64}, {288, 768}} {
		n, k := c[0], c[1]
		w := make([]int8, n*k)
		fillInt8(r, w, fillRandom, true)
		p, err := PackInt8(w, n, k)
		if err != nil {
			t.Fatal(err)
		}
		np, kp := (n+panelN-1)/panelN*panelN, (k+3)&^3
		if got, limit := p.ResidentBytes(), int64(np*kp+4*n); got > limit {
			t.Fatalf("%dx%d: %d resident bytes, more than one padded copy (%d)", n, k, got, limit)
		}
		for j := 0; j < n; j++ {
			for kk := 0; kk < k; kk++ {
				if v := p.at(j, kk); v != w[j*k+kk] {
					t.Fatalf("%dx%d: weight (%d,%d) decodes as %d, want %d", n, k, j, kk, v, w[j*k+kk])
				}
			}
		}
	}
}
