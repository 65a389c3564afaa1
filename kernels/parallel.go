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

// tasker is a unit of parallel work: runTask(i) for i in [0, n) must write disjoint memory.
// Callers pass pointers to pooled structs (not closures), so that starting a parallel loop
// allocates nothing.
type tasker interface{ runTask(i int) }

type parJob struct {
	n    int64
	next atomic.Int64
	t    tasker
	wg   sync.WaitGroup
}

var jobPool = freeList[parJob]{}

func (j *parJob) run() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.t.runTask(int(i))
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

// parallelFor runs t.runTask(0..n-1), spreading the indices over the calling goroutine and
// idle pool workers. Tasks must write disjoint memory. It allocates nothing in steady state.
func parallelFor(n int, t tasker) {
	poolOnce.Do(startPool)
	helpers := min(poolSize, n-1)
	if lim := int(maxThreads.Load()); lim > 0 {
		helpers = min(helpers, lim-1)
	}
	if helpers <= 0 {
		for i := 0; i < n; i++ {
			t.runTask(i)
		}
		return
	}
	j := jobPool.Get()
	j.n, j.t = int64(n), t
	j.next.Store(0)
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
	j.t = nil
	jobPool.Put(j)
}
