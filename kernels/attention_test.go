package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestAttentionAllPaths compares AttentionScores and AttentionValues on every path with plain
// loops, on random and extreme inputs (cache bytes -128/127, queries at the int16 limits,
// weights 0 and MaxAttentionWeight), head sizes with and without a SIMD form and position counts
// around the 15-position widening blocks.
func TestAttentionAllPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	defer func() {
		if err := SetPath(Paths()[len(Paths())-1]); err != nil {
			t.Fatal(err)
		}
	}()
	for _, hd := range []int{16, 48, 64, 128, 6, 8, 24} {
		for _, n := range []int{1, 2, 14, 15, 16, 17, 30, 31, 47, 100} {
			for kind := 0; kind < 4; kind++ {
				q := make([]int16, hd)
				k := make([]int8, n*hd+1)[1:] // unaligned
				e := make([]int32, n)
				for i := range q {
					q[i] = int16(r.IntN(511) - 255)
					if kind == 1 {
						q[i] = int16(-32768 + 65535*r.IntN(2))
					}
				}
				for i := range k {
					k[i] = int8(r.IntN(256) - 128)
					if kind >= 1 {
						k[i] = int8(-128 + 255*r.IntN(2))
					}
				}
				for i := range e {
					e[i] = int32(r.IntN(MaxAttentionWeight + 1))
					switch kind {
					case 2:
						e[i] = MaxAttentionWeight
					case 3:
						e[i] = int32(MaxAttentionWeight * r.IntN(2))
					}
				}
				ws := make([]int32, n)
				for tt := range ws {
					for d := 0; d < hd; d++ {
						ws[tt] += int32(q[d]) * int32(k[tt*hd+d])
					}
				}
				wo := make([]int64, hd)
				for d := range wo {
					for tt := 0; tt < n; tt++ {
						wo[d] += int64(e[tt]) * int64(k[tt*hd+d])
					}
				}
				for _, path := range Paths() {
					if err := SetPath(path); err != nil {
						t.Fatal(err)
					}
					s := make([]int32, n)
					AttentionScores(s, q, k)
					for i := range s {
						if s[i] != ws[i] {
							t.Fatalf("%s hd %d n %d kind %d: score %d = %d, want %d", path, hd, n, kind, i, s[i], ws[i])
						}
					}
					o := make([]int64, hd)
					for i := range o {
						o[i] = 12345 // overwritten
					}
					AttentionValues(o, e, k)
					for i := range o {
						if o[i] != wo[i] {
							t.Fatalf("%s hd %d n %d kind %d: value sum %d = %d, want %d", path, hd, n, kind, i, o[i], wo[i])
						}
					}
				}
			}
		}
	}
}

func TestAttentionPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"short k":     func() { AttentionScores(make([]int32, 3), make([]int16, 16), make([]int8, 47)) },
		"short v":     func() { AttentionValues(make([]int64, 16), make([]int32, 3), make([]int8, 47)) },
		"weight high": func() { AttentionValues(make([]int64, 16), []int32{MaxAttentionWeight + 1}, make([]int8, 16)) },
		"weight < 0":  func() { AttentionValues(make([]int64, 16), []int32{-1}, make([]int8, 16)) },
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

func BenchmarkAttention(b *testing.B) {
	const n, hd = 128, 48
	q, k, e := make([]int16, hd), make([]int8, n*hd), make([]int32, n)
	for i := range k {
		k[i] = int8(i)
	}
	for i := range e {
		e[i] = int32(i * 1000)
	}
	s, o := make([]int32, n), make([]int64, hd)
	for _, path := range Paths() {
		b.Run(path, func(b *testing.B) {
			if err := SetPath(path); err != nil {
				b.Fatal(err)
			}
			defer SetPath(Paths()[len(Paths())-1])
			for b.Loop() {
				AttentionScores(s, q, k)
				AttentionValues(o, e, k)
			}
			b.ReportMetric(float64(2*n*hd)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
