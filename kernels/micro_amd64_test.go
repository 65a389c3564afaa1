//go:build !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkMicroVNNI runs the 8x48 AVX-512 VNNI micro-kernel on one L1-resident tile (int32 and
// fused int8 stores) for several depths: the kernel's own rate with no cache misses and no driver,
// to compare with BenchmarkPeakVPDPBUSD in the same run.
func BenchmarkMicroVNNI(b *testing.B) {
	if !cpu.X86.HasAVX512VNNI {
		b.Skip("no AVX-512 VNNI")
	}
	for _, k := range []int{64, 256, 512, 1024} {
		r := rand.New(rand.NewPCG(1, 1))
		a := make([]int8, 8*k)
		fillInt8(r, a, fillRandom, false)
		wraw := make([]int8, 48*k)
		fillInt8(r, wraw, fillRandom, true)
		w, _ := PackInt8(wraw, 48, k)
		rq := randomRequant(r, 48, k)
		ep := make([]int64, 6*24)
		epTable(ep, rq, 0, 48, 48)
		off := make([]int32, 64)
		roff := make([]int32, 8)
		c32 := make([]int32, 8*48)
		c8 := make([]int8, 8*48)
		ts := w.kp * panelN
		for _, q := range []bool{false, true} {
			b.Run(fmt.Sprintf("k%d/int8out=%v", k, q), func(b *testing.B) {
				cpu := startThreadCPU(b)
				for range b.N {
					if q {
						vnni8x48q(&a[0], k, &w.panel[0], ts, k/4, &off[0], &roff[0], &c8[0], 48, &ep[0], 0, -128, 127)
					} else {
						vnni8x48(&a[0], k, &w.panel[0], ts, k/4, &off[0], &roff[0], &c32[0], 48*4)
					}
				}
				ops := 2 * 8 * 48 * float64(k) * float64(b.N)
				b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
				if ns := cpu.nanos(); ns > 0 {
					b.ReportMetric(ops/float64(ns), "GOPS-cpu")
				}
			})
		}
	}
}
