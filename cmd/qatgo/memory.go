package main

import (
	"flag"
	"fmt"

	"github.com/qatgo/qatgo/infer"
)

// defaultMaxMemoryMiB is the default of -max-memory: the buffers of one batch (inputs, the
// session's activations and outputs) may take up to 1 GiB.
const defaultMaxMemoryMiB = 1024

// memoryFlag defines -max-memory on fs. The function it returns checks the value and returns the
// budget in bytes.
func memoryFlag(fs *flag.FlagSet) func() (int64, error) {
	m := fs.Int64("max-memory", defaultMaxMemoryMiB, "memory budget in MiB for one batch's buffers (inputs, activations, outputs): a larger -batch is lowered to fit")
	return func() (int64, error) {
		if *m < 1 || *m > 1<<30 {
			return 0, usagef("-max-memory must be in [1,%d] MiB, got %d", 1<<30, *m)
		}
		return *m << 20, nil
	}
}

// fitBatch returns the largest batch size up to batch whose buffers fit in budget bytes, and says
// so on stderr when that is less than batch. A model that does not fit even at batch 1 is an error
// (checked before anything is allocated for the batch).
func fitBatch(e *env, md *infer.Model, batch int, opt infer.SessionOptions, budget int64) (int, error) {
	b := md.MaxBatchWithin(budget, batch, opt)
	if b == 0 {
		need := md.InputBytes(1) + md.SessionBytes(1, opt)
		return 0, fmt.Errorf("the model needs %d MiB of buffers for one sample (input %v, %d threads), more than the memory budget of %d MiB: raise -max-memory if the machine has the memory",
			mib(need), md.InputShape(), max(opt.Threads, 1), budget>>20)
	}
	if b < batch {
		need := md.InputBytes(batch) + md.SessionBytes(batch, opt)
		fmt.Fprintf(e.stderr, "note: -batch %d needs %d MiB of buffers, more than the memory budget of %d MiB (-max-memory): using batch %d\n",
			batch, mib(need), budget>>20, b)
	}
	return b, nil
}

// mib rounds bytes up to MiB.
func mib(n int64) int64 { return (n + 1<<20 - 1) >> 20 }
