//go:build !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"
)

// The AVX-VNNI kernels cannot run on a CPU without AVX-VNNI (such as the AVX-512 development
// machine). Their EVEX twins, generated from the same source with only the encoding of
// VPDPBUSD changed, run wherever AVX-512 VNNI does; TestAVXVNNIEncoding checks the VEX bytes.
func init() {
	if cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL && lookup("avxvnni") == nil {
		testOnlyImpls = append(testOnlyImpls, newSIMDImpl("avxvnni-evex-twin", &simdKernels{
			mr: 6, wideN: 16,
			wide: avxvnni6x16Evex, narrow: avxvnni6x16Evex, gemv: avxvnniGemvEvex,
			sum: sumInt8AVX2, requant: requantAVX2,
		}))
	}
}

// TestAVXVNNIEncoding feeds the BYTE-encoded instructions of avx2_amd64.s to GNU objdump
// (skipped if absent) and checks that each decodes as the VEX VPDPBUSD named in its comment.
func TestAVXVNNIEncoding(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("objdump not installed")
	}
	src, err := os.ReadFile("avx2_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`\tBYTE (.*) // VPDPBUSD Y(\d+), Y(\d+), Y(\d+) \(Intel order; AVX-VNNI`).FindAllSubmatch(src, -1)
	if len(lines) == 0 {
		t.Fatal("no BYTE-encoded VPDPBUSD found")
	}
	var code []byte
	byteRe := regexp.MustCompile(`\$0x([0-9a-f]{2})`)
	for _, l := range lines {
		for _, b := range byteRe.FindAllSubmatch(l[1], -1) {
			v, err := strconv.ParseUint(string(b[1]), 16, 8)
			if err != nil {
				t.Fatal(err)
			}
			code = append(code, byte(v))
		}
	}
	f := filepath.Join(t.TempDir(), "vnni.bin")
	if err := os.WriteFile(f, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(objdump, "-D", "-b", "binary", "-m", "i386:x86-64", f).Output()
	if err != nil {
		t.Skipf("objdump failed: %v", err)
	}
	re := regexp.MustCompile(`\{vex\} vpdpbusd %ymm(\d+),%ymm(\d+),%ymm(\d+)`)
	got := re.FindAllSubmatch(out, -1)
	if len(got) != len(lines) {
		t.Fatalf("objdump decodes %d VEX VPDPBUSD, the source has %d:\n%s", len(got), len(lines), out)
	}
	for i, m := range got {
		w := lines[i]
		// AT&T order is (s8, u8, dst); the comment is Intel order (dst, u8, s8).
		if string(m[3]) != string(w[2]) || string(m[2]) != string(w[3]) || string(m[1]) != string(w[4]) {
			t.Errorf("instruction %d: objdump %q, source %q", i, m[0], w[0])
		}
	}
}

// TestRequantVector checks the vector epilogues against quant.Requantize on extreme inputs.
func TestRequantVector(t *testing.T) {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		t.Run("avx512", func(t *testing.T) { testRequantVector(t, requantAVX512NoCorr, false) })
	}
	if cpu.X86.HasAVX2 {
		t.Run("avx2", func(t *testing.T) { testRequantVector(t, requantAVX2, false) })
		t.Run("avx2x8", func(t *testing.T) { testRequantVector(t, requant8AVX2, false) })
		t.Run("avx2x8-negshift", func(t *testing.T) { testRequantVector(t, requant8AVX2, true) })
	}
}

func testRequantVector(t *testing.T, requant func(dst *int8, ldd int, src *int32, lds int, rows int, m0 *int32, sh *int32, n int, zp, lo, hi int64), negShift bool) {
	r := rand.New(rand.NewPCG(13, 14))
	const n = 4096
	src := make([]int32, n)
	m0 := make([]int32, n)
	sh := make([]int32, n)
	for i := range src {
		switch i % 7 {
		case 0:
			src[i] = math.MaxInt32
		case 1:
			src[i] = math.MinInt32
		case 2:
			src[i] = int32(r.IntN(2001) - 1000)
		default:
			src[i] = int32(r.Uint32())
		}
		sh[i] = int32(r.IntN(62) - 31)
		switch i % 3 {
		case 0:
			m0[i] = 1<<31 - 1
		case 1:
			m0[i] = 1 << 30
		default:
			m0[i] = int32(1<<30 + r.Int64N(1<<30))
		}
		if negShift {
			// Every shift in [-31, -1] (both ends included), and signed M0 down to -2^31.
			sh[i] = int32(-1 - r.IntN(31))
			switch i % 5 {
			case 0:
				sh[i] = -1
			case 1:
				sh[i] = -31 // quant.MinShift
			}
			switch i % 11 {
			case 3:
				m0[i] = math.MinInt32
			case 5:
				m0[i] = int32(r.Uint32())
			}
		}
	}
	for _, zp := range []int32{-128, 0, 127, math.MinInt32 + 128, math.MaxInt32 - 127} {
		// 64 rows of 64 channels: the multipliers of the first 64 entries apply to every row.
		for i := 64; i < n; i++ {
			m0[i], sh[i] = m0[i%64], sh[i%64]
		}
		rq := &Requant{M0: m0, Shift: sh, ZeroPoint: zp, Min: -128, Max: 127}
		if zp == 0 {
			rq.Min, rq.Max = 0, 6
		}
		got := make([]int8, n)
		requant(&got[0], 64, &src[0], 64, n/64, &m0[0], &sh[0], 64, int64(rq.ZeroPoint), int64(rq.Min), int64(rq.Max))
		want := refRequant(src, n, rq)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("zp %d: [%d] acc %d m0 %d shift %d: got %d want %d", zp, i, src[i], m0[i], sh[i], got[i], want[i])
			}
		}
	}
}

// BenchmarkMicroKernel runs one micro-kernel call on L1-resident data (K = 512): the ceiling
// of the GEMM driver.
func BenchmarkMicroKernel(b *testing.B) {
	type kern struct {
		name       string
		ok         bool
		rows, cols int
		f          func(a *int8, lda int, w *int8, ts int, kg int, off *int32, roff *int32, c *int32, ldc int)
	}
	x := &cpu.X86
	for _, k := range []kern{
		{"avx512vnni-8x48", x.HasAVX512VNNI, 8, 48, vnni8x48},
		{"avx512vnni-8x16", x.HasAVX512VNNI, 8, 16, vnni8x16},
		{"avxvnni-evex-twin-6x16", x.HasAVX512VNNI && x.HasAVX512VL, 6, 16, avxvnni6x16Evex},
		{"avx2-4x16", x.HasAVX2, 4, 16, avx2Wide},
		{"avx2-6x16", x.HasAVX2, 6, 16, avx2Wide6},
		{"avx2-6x16w16", x.HasAVX2, 6, 16, avx2W16}, // int16 weight panel (twice the bytes)
	} {
		if !k.ok {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			kg := 128
			// Twice the int8 sizes: the AVX2 kernels read int16 activations (and avx2W16
			// int16 weights).
			a := make([]int8, 2*k.rows*kg*4)
			w := make([]int8, 2*k.cols/16*kg*64)
			off := make([]int32, k.cols)
			roff := make([]int32, k.rows)
			c := make([]int32, k.rows*k.cols)
			cpu := startThreadCPU(b)
			for range b.N {
				k.f(&a[0], kg*4, &w[0], kg*64, kg, &off[0], &roff[0], &c[0], k.cols*4)
			}
			ops := 2 * float64(k.rows*k.cols*kg*4) * float64(b.N)
			b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(ops/float64(ns), "GOPS-cpu")
			}
		})
	}
	if x.HasAVX512VNNI {
		// The 8x48 kernel with the requantization epilogue and int8 stores (what GEMMInt8 runs).
		b.Run("avx512vnni-8x48q", func(b *testing.B) {
			const kg, n = 128, 48
			r := rand.New(rand.NewPCG(7, 7))
			a := make([]int8, 8*kg*4)
			w := make([]int8, n/16*kg*64)
			off := make([]int32, n)
			roff := make([]int32, 8)
			c := make([]int8, 8*n)
			ep := make([]int64, n/8*24)
			epTable(ep, randomRequant(r, n, 4*kg), 0, n, n)
			cpu := startThreadCPU(b)
			for range b.N {
				vnni8x48q(&a[0], kg*4, &w[0], kg*64, kg, &off[0], &roff[0], &c[0], n, &ep[0], 0, -128, 127)
			}
			ops := 2 * float64(8*n*kg*4) * float64(b.N)
			b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(ops/float64(ns), "GOPS-cpu")
			}
		})
	}
}

// BenchmarkPeakVPDPBUSD measures the VNNI peak of this machine: 24 independent register-only
// VPDPBUSD zmm per iteration (64 multiply-adds each).
func BenchmarkPeakVPDPBUSD(b *testing.B) {
	if !cpu.X86.HasAVX512VNNI {
		b.Skip("no AVX-512 VNNI")
	}
	const n = 1 << 16
	cpu := startThreadCPU(b)
	for range b.N {
		peakVPDPBUSD(n)
	}
	ops := 24 * 64 * 2 * float64(n) * float64(b.N)
	b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
	if ns := cpu.nanos(); ns > 0 {
		b.ReportMetric(ops/float64(ns), "GOPS-cpu")
	}
}

// BenchmarkPeakVPDPBUSDThreads runs the register-only VPDPBUSD loop on 1 and 2 goroutines at
// once: the ratio of the two GOPS figures is how much a second thread can add on this machine
// (below 2 when the CPUs share execution units, as SMT siblings do, or are busy with other work).
func BenchmarkPeakVPDPBUSDThreads(b *testing.B) {
	if !cpu.X86.HasAVX512VNNI {
		b.Skip("no AVX-512 VNNI")
	}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads%d", threads), func(b *testing.B) {
			const n = 1 << 16
			var wg sync.WaitGroup
			for range b.N {
				wg.Add(threads)
				for range threads {
					go func() { peakVPDPBUSD(n); wg.Done() }()
				}
				wg.Wait()
			}
			ops := float64(threads) * 24 * 64 * 2 * float64(n) * float64(b.N)
			b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
		})
	}
}

// BenchmarkPeakAVX2 measures the AVX2 peak of the GEMM's inner operation: 12 independent
// register-only VPMADDWD ymm + VPADDD pairs per iteration (16 multiply-adds each). Compare the
// AVX2 GEMM with it in the same run: go test -run x -bench 'PeakAVX2|GEMM/avx2/' ./kernels
func BenchmarkPeakAVX2(b *testing.B) {
	if !cpu.X86.HasAVX2 {
		b.Skip("no AVX2")
	}
	const n = 1 << 16
	cpu := startThreadCPU(b)
	for range b.N {
		peakAVX2MADD(n)
	}
	ops := 12 * 16 * 2 * float64(n) * float64(b.N)
	b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
	if ns := cpu.nanos(); ns > 0 {
		b.ReportMetric(ops/float64(ns), "GOPS-cpu")
	}
}

func TestSumRowsAVX512(t *testing.T) {
	if !cpu.X86.HasAVX512BW || !cpu.X86.HasAVX512VNNI {
		t.Skip("no AVX-512")
	}
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{1, 7, 63, 64, 65, 72, 127, 128, 200, 513} {
		rows, lda := 5, n+r.IntN(3)
		a := make([]int8, 1+(rows-1)*lda+n)[1:] // unaligned, the last row ends the slice
		fillInt8(r, a, fillKind(r.IntN(4)), false)
		got := make([]int32, rows)
		sumRowsAVX512(&got[0], &a[0], lda, rows, n)
		for i := range got {
			var want int32
			for _, v := range a[i*lda : i*lda+n] {
				want += int32(v)
			}
			if got[i] != want {
				t.Fatalf("n=%d row %d: got %d want %d", n, i, got[i], want)
			}
		}
	}
}

// TestFusedConvWithoutVBMI runs TestFusedConv with the one-input-channel kernel (AVX-512 VBMI)
// turned off, so that those shapes also take the general VNNI kernels, as on CPUs without VBMI.
func TestFusedConvWithoutVBMI(t *testing.T) {
	if !hasVBMI {
		t.Skip("no AVX-512 VBMI: TestFusedConv already runs the general kernels")
	}
	hasVBMI = false
	defer func() { hasVBMI = true }()
	TestFusedConv(t)
}

// BenchmarkFusedConvLayers runs the fused convolutions of the two MNIST CNNs (ggml's: conv1 1->8
// and conv2 8->16 channels, pooled; the default example's BN CNN: 1->16 and 16->32 pooled, 32->64
// on 7x7) on the selected path, batch 16, and reports multiply-adds per second of the thread's
// CPU time. Compare with the register-only peak in the same run (GOPS-cpu / 2 of
// BenchmarkPeakVPDPBUSD): go test -run x -bench 'FusedConvLayers|PeakVPDPBUSD$' ./kernels
func BenchmarkFusedConvLayers(b *testing.B) {
	sh := func(h, c, n int) ConvShape {
		return ConvShape{InH: h, InW: h, InC: c, OutC: n, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	}
	for _, l := range []struct {
		name   string
		s      ConvShape
		pool   bool
		noVBMI bool
	}{
		{"ggml.conv1", sh(28, 1, 8), true, false}, {"ggml.conv1-noVBMI", sh(28, 1, 8), true, true},
		{"ggml.conv2", sh(14, 8, 16), true, false}, {"bn.conv1", sh(28, 1, 16), true, false},
		{"bn.conv2", sh(14, 16, 32), true, false}, {"bn.conv3", sh(7, 32, 64), false, false},
	} {
		b.Run(l.name, func(b *testing.B) {
			if l.noVBMI {
				if !hasVBMI {
					b.Skip("no AVX-512 VBMI")
				}
				hasVBMI = false
				defer func() { hasVBMI = true }()
			}
			r := rand.New(rand.NewPCG(1, 2))
			s := l.s
			wraw := make([]int8, s.OutC*s.K())
			fillInt8(r, wraw, fillRandom, true)
			w, err := PackInt8(wraw, s.OutC, s.K())
			if err != nil {
				b.Fatal(err)
			}
			f, err := NewFusedConv(s, l.pool, -128, w, nil, randomRequant(r, s.OutC, s.K()))
			if err != nil {
				b.Fatal(err)
			}
			const batch = 16
			src := make([]int8, batch*s.InH*s.InW*s.InC)
			fillInt8(r, src, fillRandom, false)
			dst := make([]int8, batch*f.OutH()*f.OutW()*s.OutC)
			var sc FusedScratch
			f.Run(dst, src, batch, &sc)
			cpu := startThreadCPU(b)
			b.ResetTimer()
			for range b.N {
				f.Run(dst, src, batch, &sc)
			}
			macs := float64(b.N*batch) * float64(s.OutH()*s.OutW()*s.OutC*s.K())
			if ns := cpu.nanos(); ns > 0 {
				b.ReportMetric(macs/float64(ns), "GMAC/s-cpu")
				b.ReportMetric(float64(ns)/1e3/float64(b.N*batch), "cpu-us/image")
			}
			b.Logf("kernels path %s", Path())
		})
	}
}
