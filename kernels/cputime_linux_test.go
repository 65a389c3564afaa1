package kernels

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// threadCPU measures the CPU time of the benchmark's own OS thread, which stays meaningful on
// a machine shared with other jobs (wall-clock ns/op is inflated by time spent descheduled).
// Only single-threaded benchmarks report it.
type threadCPU struct{ start int64 }

func startThreadCPU(b *testing.B) *threadCPU {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &threadCPU{start: threadNanos()}
}

func (t *threadCPU) nanos() int64 { return threadNanos() - t.start }

func threadNanos() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func processNanos() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
