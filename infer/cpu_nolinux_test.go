//go:build !linux

package infer

import "time"

// threadCPU is not available on this platform: it returns 0 and benchmarks use wall time.
func threadCPU() time.Duration { return 0 }
