//go:build unix

package infer

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) used by the process so far; benchmarks report it
// next to wall time because the machines they run on are often shared.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
