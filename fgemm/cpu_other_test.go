//go:build !unix

package fgemm

// cpuSeconds is not measured on this platform; benchmarks skip the
// per-CPU-second metrics.
func cpuSeconds() float64 { return 0 }
