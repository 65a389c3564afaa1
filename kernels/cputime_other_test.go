//go:build !linux

package kernels

import "testing"

type threadCPU struct{}

func startThreadCPU(b *testing.B) *threadCPU { return &threadCPU{} }

func (t *threadCPU) nanos() int64 { return 0 }

func processNanos() int64 { return 0 }
