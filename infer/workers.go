package infer

import (
	"runtime"
	"sync/atomic"
	"time"
)

// The worker goroutines of a multi-threaded session. A batch of a few hundred microseconds would
// lose a noticeable share of its time if every batch parked and woke the threads through the Go
// scheduler (a wake-up of an idle CPU costs tens of microseconds on a virtual machine, once to
// start the workers and once to resume the caller). So both sides first spin for up to spinWait on
// an atomic word, and park on a channel only when nothing arrives: back-to-back batches never
// sleep, an idle session costs no CPU after spinWait.

// spinWait bounds how long a worker waits for the next job, and the caller for the workers to
// finish, before parking.
const spinWait = 50 * time.Microsecond

// workers is the hand-off between a session's caller (lane 0) and its worker goroutines.
type workers struct {
	// word is seq<<16 | lanes of the current job: every job changes seq, and lanes tells a worker
	// whether it takes part (lane l < lanes). cur is the job, written before word.
	word atomic.Uint64
	seq  uint64
	cur  job
	left atomic.Int32 // workers still running the current job
	// parked[l-1] is set while worker l waits on wake[l-1] (buffered, one token); the caller
	// that clears it sends the token. callerParked and done do the same for the caller.
	parked       []atomic.Bool
	wake         []chan struct{}
	callerParked atomic.Bool
	done         chan struct{}
	closed       atomic.Bool
}

// startWorkers starts n-1 workers for lanes 1..n-1.
func (s *Session) startWorkers(n int) {
	w := &workers{parked: make([]atomic.Bool, n-1), wake: make([]chan struct{}, n-1), done: make(chan struct{}, 1)}
	s.w = w
	for l := 1; l < n; l++ {
		w.wake[l-1] = make(chan struct{}, 1)
		go s.worker(w, l)
	}
}

// stop ends the workers (Close).
func (w *workers) stop() {
	w.closed.Store(true)
	for _, c := range w.wake {
		close(c)
	}
}

// worker runs the jobs that include lane l until the session is closed.
func (s *Session) worker(w *workers, l int) {
	var seen uint64
	for {
		word, ok := w.next(l, seen)
		if !ok {
			return
		}
		seen = word
		if l >= int(word&0xffff) {
			continue // a batch too small for this lane
		}
		s.runLane(&s.lanes[l], w.cur)
		if w.left.Add(-1) == 0 && w.callerParked.CompareAndSwap(true, false) {
			w.done <- struct{}{}
		}
	}
}

// next waits until the job word differs from seen (spinning, then parked) and returns it; false
// once the session is closed.
func (w *workers) next(l int, seen uint64) (uint64, bool) {
	start := time.Now()
	for i := 1; ; i++ {
		if v := w.word.Load(); v != seen {
			return v, true
		}
		if w.closed.Load() {
			return 0, false
		}
		if i%256 == 0 {
			if time.Since(start) > spinWait {
				break
			}
			runtime.Gosched()
		}
	}
	w.parked[l-1].Store(true)
	if v := w.word.Load(); v != seen || w.closed.Load() {
		if w.parked[l-1].CompareAndSwap(true, false) {
			return v, !w.closed.Load()
		}
		// The caller cleared parked first and sends the token: take it.
	}
	if _, ok := <-w.wake[l-1]; !ok {
		return 0, false
	}
	return w.word.Load(), true
}

// runLanes hands j to lanes 1..nw-1, runs lane 0 on the calling goroutine and waits for the others.
func (s *Session) runLanes(nw int, j job) {
	w := s.w
	w.cur = j
	w.left.Store(int32(nw - 1))
	w.seq++
	w.word.Store(w.seq<<16 | uint64(nw))
	for l := 1; l < nw; l++ {
		if w.parked[l-1].CompareAndSwap(true, false) {
			w.wake[l-1] <- struct{}{}
		}
	}
	s.runLane(&s.lanes[0], j)
	start := time.Now()
	for i := 1; w.left.Load() != 0; i++ {
		if i%256 == 0 {
			if time.Since(start) > spinWait {
				w.callerParked.Store(true)
				if w.left.Load() == 0 && w.callerParked.CompareAndSwap(true, false) {
					return
				}
				<-w.done
				return
			}
			runtime.Gosched()
		}
	}
}
