package infer

import "testing"

func BenchmarkMaxPool2x2(b *testing.B) {
	st := &step{h: 28, wd: 28, c: 8, oh: 14, ow: 14, kh: 2, kw: 2, sh: 2, sw: 2, lo: -128, hi: 127}
	src := make([]int8, 28*28*8)
	dst := make([]int8, 14*14*8)
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		maxPool(dst, src, 1, st)
	}
}
