//go:build linux

package infer

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time of the calling OS thread (CLOCK_THREAD_CPUTIME_ID, exact to the
// nanosecond, unlike getrusage's tick-updated figure); callers lock their goroutine to the
// thread (runtime.LockOSThread). On a shared machine it excludes the time the thread waited for
// a core, which wall time includes.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
