package infer

import (
	"testing"

	"github.com/qatgo/qatgo/kernels"
)

// BenchmarkLMDecodeInt measures only the integer runtime's batch-1 decode (one thread) on the
// models of BenchmarkLMDecode: the benchmark to profile the per-token integer path with.
//
//	go test ./infer -run '^$' -bench LMDecodeInt -cpuprofile cpu.out
func BenchmarkLMDecodeInt(b *testing.B) {
	defer kernels.SetMaxThreads(kernels.SetMaxThreads(1))
	for _, bc := range lmBenchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			lm, err := LoadLM(lmBenchModel(b, bc.name, bc.cfg))
			if err != nil {
				b.Fatal(err)
			}
			s := lm.NewSession()
			ctx := lm.ContextLength()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if s.Pos() == ctx {
					s.Reset()
				}
				if _, err := s.Decode(i % lm.Vocab()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
