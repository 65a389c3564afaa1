package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestGEMVDecodeForm checks that one-thread GEMV calls on the avx512vnni path take the decode
// form (gemvDec) where the layer fits it, and that it computes the plain-loop references (int8
// and int4 weights, int8 and int32 outputs) on random and extreme inputs, including shapes
// whose N is not a multiple of 8 (int32 outputs only) and a depth that is not a multiple of 64.
func TestGEMVDecodeForm(t *testing.T) {
	var p *impl
	for _, q := range allImpls() {
		if q.name == "avx512vnni" {
			p = q
		}
	}
	if p == nil {
		t.Skip("no avx512vnni path on this CPU or build")
	}
	old := current.Load()
	defer current.Store(old)
	current.Store(p)
	r := rand.New(rand.NewPCG(41, 42))
	type tc struct{ n, k, group int }
	for _, c := range []tc{{8, 8, 8}, {16, 64, 32}, {24, 64, 32}, {64, 64, 32}, {192, 64, 32}, {20, 96, 32}, {256, 64, 32}, {64, 128, 32}, {288, 768, 32}, {768, 288, 32}, {40, 64, 64}, {48, 128, 128}, {64, 64, 0}, {72, 36, 0}, {36, 40, 0}, {288, 288, 0}} {
		for _, kind := range []fillKind{fillRandom, fillMin, fillMax, fillMixed} {
			a := make([]int8, c.k)
			fillInt8(r, a, kind, false)
			bias := make([]int32, c.n)
			for i := range bias {
				bias[i] = int32(r.IntN(20001) - 10000)
			}
			rq := randomRequant(r, c.n, c.k*64)
			var g *GEMV
			var want []int32
			if c.group == 0 {
				w := make([]int8, c.n*c.k)
				fillInt8(r, w, kind, true)
				pw, err := PackInt8(w, c.n, c.k)
				if err != nil {
					t.Fatal(err)
				}
				if g, err = NewGEMVInt8(pw, bias, rq); err != nil {
					t.Fatal(err)
				}
				want = refGEMM(a, c.k, 1, w, c.n, c.k, bias)
			} else {
				w4 := make([]int8, c.n*c.k)
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
				pw, err := PackInt4(w4, c.n, c.k, c.group, scales)
				if err != nil {
					t.Fatal(err)
				}
				if g, err = NewGEMVInt4(pw, bias, rq); err != nil {
					t.Fatal(err)
				}
				want = refInt4(a, w4, c.n, c.k, c.group, scales, bias)
			}
			if g.dec == nil || g.dec.p != p {
				t.Fatalf("%dx%d group %d: no decode form", c.n, c.k, c.group)
			}
			if (g.dec.ep != nil) != (c.n%8 == 0) {
				t.Fatalf("%dx%d: epilogue table %v, want one iff N %% 8 == 0", c.n, c.k, g.dec.ep != nil)
			}
			sc := make([]int32, g.ScratchLen())
			got := make([]int32, c.n)
			g.RunInt32(got, a, sc, 1)
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("%dx%d group %d fill %d: acc[%d] = %d, want %d", c.n, c.k, c.group, kind, j, got[j], want[j])
				}
			}
			want8 := refRequant(want, c.n, rq)
			got8 := make([]int8, c.n)
			g.Run(got8, a, sc, 1)
			for j := range got8 {
				if got8[j] != want8[j] {
					t.Fatalf("%dx%d group %d fill %d: out[%d] = %d, want %d", c.n, c.k, c.group, kind, j, got8[j], want8[j])
				}
			}
		}
	}
}
