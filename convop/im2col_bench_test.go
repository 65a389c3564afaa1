package convop

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkIm2col times im2col and col2im for the two convolutions of the
// MNIST CNN (per image), in CPU nanoseconds per column-matrix element.
func BenchmarkIm2col(b *testing.B) {
	for _, gg := range []geom{newGeom(1, 28, 28, 8, 3, 3, 1, 1, 1, 1), newGeom(8, 14, 14, 16, 3, 3, 1, 1, 1, 1)} {
		g := gg
		x := make([]float32, g.c*g.h*g.w)
		r := rand.New(rand.NewPCG(1, 1))
		for i := range x {
			x[i] = r.Float32()
		}
		col := make([]float32, g.kdim*g.pixels)
		n := float64(len(col))
		run := func(b *testing.B, f func()) {
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				f()
			}
			if cpu := cpuSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(cpu/float64(b.N)*1e9/n, "cpu-ns/elem")
			}
		}
		name := fmt.Sprintf("c%d-%dx%d", g.c, g.h, g.w)
		b.Run("im2col/"+name, func(b *testing.B) { run(b, func() { im2col(&g, x, col) }) })
		b.Run("col2im/"+name, func(b *testing.B) { run(b, func() { col2im(&g, col, x) }) })
	}
}
