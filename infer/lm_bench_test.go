package infer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/qatgo/qatgo/fgemm"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// lmBenchConfigs are the models of BenchmarkLMDecode: the tiny default architecture and the
// 15M-parameter configuration (d=288, 6 layers, 6 heads, hidden 768, context 256; byte vocabulary),
// each at W8A8 (per-channel int8) and W4A8 (int4, groups of 32).
var lmBenchConfigs = []struct {
	name string
	cfg  lmref.Config
}{
	{"tiny/w8a8", lmref.Tiny(8, 0)},
	{"tiny/w4a8g32", lmref.Tiny(4, 32)},
	{"stories15m/w8a8", lmref.Stories15M(8, 0)},
	{"stories15m/w4a8g32", lmref.Stories15M(4, 32)},
}

var (
	lmBenchModels  sync.Map // name -> *qmodel.Model
	memBWOnce      sync.Once
	memRead, memCp float64
)

func lmBenchModel(b *testing.B, name string, c lmref.Config) *qmodel.Model {
	if m, ok := lmBenchModels.Load(name); ok {
		return m.(*qmodel.Model)
	}
	m, err := lmref.RandomLM(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	lmBenchModels.Store(name, m)
	return m
}

// memBandwidth measures this machine's single-thread memory bandwidth in GB/s on a buffer far
// larger than the caches (256 MiB): read (an unrolled sum over uint64 words) and copy (Go's copy,
// counting the bytes read plus the bytes written). Best of three passes each, timed in thread CPU
// time like the decoders (a shared memory bus still slows it when other jobs stream memory).
func memBandwidth() (read, cp float64) {
	memBWOnce.Do(func() {
		const n = 256 << 20 / 8
		src, dst := make([]uint64, n), make([]uint64, n)
		for i := range src {
			src[i] = uint64(i)
		}
		copy(dst, src)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		since := func(w time.Time, c time.Duration) float64 {
			if c > 0 {
				return (threadCPU() - c).Seconds()
			}
			return time.Since(w).Seconds()
		}
		var sink uint64
		for range 3 {
			w, c := time.Now(), threadCPU()
			sink += sumWords(src)
			memRead = max(memRead, float64(8*n)/since(w, c)/1e9)
			w, c = time.Now(), threadCPU()
			copy(dst, src)
			memCp = max(memCp, float64(2*8*n)/since(w, c)/1e9)
		}
		if sink == 42 {
			fmt.Print("")
		}
	})
	return memRead, memCp
}

func sumWords(v []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for i := 0; i+8 <= len(v); i += 8 {
		w := v[i : i+8 : i+8]
		s0 += w[0]
		s1 += w[1]
		s2 += w[2]
		s3 += w[3]
		s4 += w[4]
		s5 += w[5]
		s6 += w[6]
		s7 += w[7]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// lmWeightTraffic returns the bytes of weights one decoded token reads: every packed linear
// weight (with its scales and row sums) and one embedding row.
func lmWeightTraffic(lm *LM) int64 {
	var n int64
	for i := range lm.steps {
		st := &lm.steps[i]
		switch {
		case st.lin.w8 != nil:
			n += st.lin.w8.ResidentBytes()
		case st.lin.w4 != nil:
			n += st.lin.w4.ResidentBytes()
		case st.kind == qmodel.OpEmbedding:
			n += int64(st.table.d)
			if st.table.int4 {
				n = n - int64(st.table.d) + int64(st.table.d+1)/2
			}
		}
	}
	return n
}

// floatVariants are the float32 decoders BenchmarkLMDecode runs; it compares with the fastest.
var floatVariants = []lmref.DecoderOptions{
	{},                                      // 0: W [N][K] (fgemm's dot kernel), attention loops
	{Transposed: true},                      // 1: Wᵀ [K][N] read in place
	{AttentionGEMM: true},                   // 2: attention products on fgemm too
	{Transposed: true, AttentionGEMM: true}, // 3
}

// BenchmarkLMDecode measures batch-1 decoding on one thread, in one run, of the integer runtime
// (LMSession.Decode) and of the float32 decoders of the same model (lmref.Decoder: the same
// weights dequantized, the same KV-cache algorithm, linear layers on fgemm; four variants,
// floatVariants), interleaved in chunks of 16 tokens so that all see the same machine load; the
// float figures are those of the fastest variant (its index: float-variant). One op is one integer token plus one token of
// each float variant; times are the CPU time of the benchmark's locked OS thread where the platform has one
// (Linux), so that time spent waiting for a core on a shared machine does not count (the ratio
// in wall time is reported too, wall-x-float); the session and the decoder restart when the context is full, so the figures average
// over all positions. Metrics: int-tok/s, float-tok/s, their ratio (x-float), the weight traffic
// of the integer model per second (int-wGB/s: weight bytes per token times tokens/s; float-wGB/s
// likewise) and the machine's single-thread memory bandwidth measured in the same process
// (mem-read-GB/s, mem-copy-GB/s, on 256 MiB buffers).
//
//	go test ./infer -run '^$' -bench LMDecode -benchtime 2000x
func BenchmarkLMDecode(b *testing.B) {
	rd, cp := memBandwidth()
	defer kernels.SetMaxThreads(kernels.SetMaxThreads(1))
	defer fgemm.SetThreads(fgemm.SetThreads(1))
	for _, bc := range lmBenchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			m := lmBenchModel(b, bc.name, bc.cfg)
			lm, err := LoadLM(m)
			if err != nil {
				b.Fatal(err)
			}
			var ds []*lmref.Decoder
			for _, o := range floatVariants {
				d, err := lmref.NewDecoder(m, o)
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, d)
			}
			s := lm.NewSession()
			ctx := lm.ContextLength()
			r := rand.New(rand.NewPCG(2, 3))
			toks := make([]int, ctx)
			for i := range toks {
				toks[i] = r.IntN(lm.Vocab())
			}
			runInt := func(n int) {
				for range n {
					if s.Pos() == ctx {
						s.Reset()
					}
					if _, err := s.Decode(toks[s.Pos()]); err != nil {
						b.Fatal(err)
					}
				}
			}
			runFloat := func(d *lmref.Decoder, n int) {
				for range n {
					if d.Pos() == ctx {
						d.Reset()
					}
					if _, err := d.Decode(toks[d.Pos()]); err != nil {
						b.Fatal(err)
					}
				}
			}
			runInt(ctx)
			s.Reset()
			for _, d := range ds {
				runFloat(d, ctx)
				d.Reset()
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			var ti, wi time.Duration
			tf, wf := make([]time.Duration, len(ds)), make([]time.Duration, len(ds))
			for done := 0; done < b.N; {
				c := min(16, b.N-done)
				t0, c0 := time.Now(), threadCPU()
				runInt(c)
				wi, ti = wi+time.Since(t0), ti+threadCPU()-c0
				for v, d := range ds {
					t0, c0 := time.Now(), threadCPU()
					runFloat(d, c)
					wf[v], tf[v] = wf[v]+time.Since(t0), tf[v]+threadCPU()-c0
				}
				done += c
			}
			b.StopTimer()
			best := 0
			for v := range ds {
				if ti <= 0 || tf[v] <= 0 { // no thread CPU clock here
					ti, tf[v] = wi, wf[v]
				}
				if tf[v] < tf[best] {
					best = v
				}
			}
			b.ReportMetric(wf[best].Seconds()/wi.Seconds(), "wall-x-float")
			b.ReportMetric(float64(best), "float-variant")
			d := ds[best]
			it, ft := float64(b.N)/ti.Seconds(), float64(b.N)/tf[best].Seconds()
			b.ReportMetric(it, "int-tok/s")
			b.ReportMetric(ft, "float-tok/s")
			b.ReportMetric(it/ft, "x-float")
			b.ReportMetric(float64(lmWeightTraffic(lm))*it/1e9, "int-wGB/s")
			b.ReportMetric(float64(d.WeightBytes)*ft/1e9, "float-wGB/s")
			b.ReportMetric(rd, "mem-read-GB/s")
			b.ReportMetric(cp, "mem-copy-GB/s")
		})
	}
}

// BenchmarkLMPrefill runs a prefill of the whole context from an empty cache on one thread and
// reports microseconds per token (wall and process CPU time) (the int8 layers run as GEMMs: on AMX tiles where
// kernels.AMX reports them, QATGO_AMX=0 for the VNNI kernels).
func BenchmarkLMPrefill(b *testing.B) {
	defer kernels.SetMaxThreads(kernels.SetMaxThreads(1))
	for _, bc := range lmBenchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			lm, err := LoadLM(lmBenchModel(b, bc.name, bc.cfg))
			if err != nil {
				b.Fatal(err)
			}
			s := lm.NewSession()
			r := rand.New(rand.NewPCG(4, 5))
			toks := make([]int, lm.ContextLength())
			for i := range toks {
				toks[i] = r.IntN(lm.Vocab())
			}
			b.ResetTimer()
			cpu0, start := processCPU(), time.Now()
			for range b.N {
				s.Reset()
				if _, err := s.Prefill(toks); err != nil {
					b.Fatal(err)
				}
			}
			el, cpu := time.Since(start), processCPU()-cpu0
			b.StopTimer()
			n := float64(b.N * len(toks))
			b.ReportMetric(float64(el.Nanoseconds())/1e3/n, "us/token")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/n, "cpu-us/token")
			b.ReportMetric(0, "ns/op")
			b.Logf("kernels path %s (AMX %v), %d tokens", kernels.Path(), kernels.AMX(), len(toks))
		})
	}
}
