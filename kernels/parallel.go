package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The worker pool: at most GOMAXPROCS-1 helper goroutines (read once, at first use), fed
// through an unbuffered channel. A call that finds every helper busy (concurrent or nested
// calls) simply runs all its tasks itself, so the pool can never deadlock and never grows.
var (
	poolOnce sync.Once
	poolCh   chan *parJob
	poolSize int
)

type parJob struct {
	n    int64
	next atomic.Int64
	fn   func(i int)
	wg   sync.WaitGroup
}

func (j *parJob) run() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.fn(int(i))
	}
}

func startPool() {
	poolSize = runtime.GOMAXPROCS(0) - 1
	poolCh = make(chan *parJob)
	for i := 0; i < poolSize; i++ {
		go func() {
			for j := range poolCh {
				j.run()
				j.wg.Done()
			}
		}()
	}
}

// maxThreads caps the number of goroutines one call may use (tests and benchmarks set it to 1
// to measure a single thread).
var maxThreads atomic.Int32

// SetMaxThreads limits how many goroutines one kernel call may use (including the caller);
// n <= 0 restores the default (GOMAXPROCS at first use). It returns the previous limit.
func SetMaxThreads(n int) int {
	return int(maxThreads.Swap(int32(max(n, 0))))
}

// parallelFor runs fn(0..n-1), spreading the indices over the calling goroutine and idle
// pool workers. Tasks must write disjoint memory.
func parallelFor(n int, fn func(i int)) {
	poolOnce.Do(startPool)
	helpers := min(poolSize, n-1)
	if lim := int(maxThreads.Load()); lim > 0 {
		helpers = min(helpers, lim-1)
	}
	if helpers <= 0 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	j := &parJob{n: int64(n), fn: fn}
	for h := 0; h < helpers; h++ {
		j.wg.Add(1)
		select {
		case poolCh <- j:
		default:
			j.wg.Done()
		}
	}
	j.run()
	j.wg.Wait()
}
