package infer

import (
	"runtime"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// allocated returns the bytes allocated on the heap while f runs.
func allocated(f func()) int64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return int64(b.TotalAlloc - a.TotalAlloc)
}

// TestSessionBytesBoundsAllocation checks SessionBytes against what a session really allocates
// (heap statistics) for several batch sizes, thread counts and KeepIntermediate: an upper bound,
// and not a loose one (within 2x plus 128 KiB).
func TestSessionBytesBoundsAllocation(t *testing.T) {
	md, err := Load(mnistCNN(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []SessionOptions{{}, {Threads: 2}, {KeepIntermediate: true}} {
		for _, batch := range []int{1, 16, 100} {
			in := make([]byte, md.InputSize()*batch)
			// Heap statistics count the whole process: another goroutine (a closed session's
			// exiting workers, the runtime) can add a few KB to one measurement but never
			// subtract, so the least of three is the session's own allocation.
			got := int64(-1)
			for range 3 {
				var s *Session
				a := allocated(func() {
					s = md.NewSessionWith(opt)
					if _, err := s.RunUint8(in, batch); err != nil {
						t.Fatal(err)
					}
				})
				s.Close()
				if got < 0 || a < got {
					got = a
				}
			}
			want := md.SessionBytes(batch, opt)
			if got > want || want > 2*got+128<<10 {
				t.Errorf("%+v batch %d: allocated %d bytes, SessionBytes %d", opt, batch, got, want)
			}
		}
	}
	if got, want := md.InputBytes(3), int64(3*md.InputSize()); got != want {
		t.Errorf("InputBytes(3) = %d, want %d (uint8 input)", got, want)
	}
}

// TestSessionMaxBytes (issue 14, item 2): a session with a byte limit refuses a batch whose
// buffers exceed it, before allocating, and runs the batches that fit; MaxBatchWithin finds the
// largest batch under a budget.
func TestSessionMaxBytes(t *testing.T) {
	b := qmodel.NewBuilder("big-input")
	x := b.Input("x", qmodel.Float32, []int{1 << 20}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.01})
	b.Output(b.Dequantize("y", q))
	md, err := Load(build(t, b))
	if err != nil {
		t.Fatal(err)
	}
	one := md.SessionBytes(1, SessionOptions{})
	s := md.NewSessionWith(SessionOptions{MaxBytes: one})
	in := make([]float32, 2<<20)
	if _, err := s.Run(in[:1<<20], 1); err != nil {
		t.Fatalf("batch 1 within the limit: %v", err)
	}
	var runErr error
	grew := allocated(func() { _, runErr = s.Run(in, 2) })
	if runErr == nil || !strings.Contains(runErr.Error(), "MaxBytes") {
		t.Errorf("batch 2 over the limit: %v", runErr)
	}
	if grew > 1<<16 {
		t.Errorf("the refused run allocated %d bytes", grew)
	}
	budget := md.InputBytes(5) + md.SessionBytes(5, SessionOptions{})
	if got := md.MaxBatchWithin(budget, 256, SessionOptions{}); got != 5 {
		t.Errorf("MaxBatchWithin(bytes of batch 5) = %d", got)
	}
	if got := md.MaxBatchWithin(budget-1, 256, SessionOptions{}); got != 4 {
		t.Errorf("MaxBatchWithin(one byte less) = %d", got)
	}
	if got := md.MaxBatchWithin(budget, 3, SessionOptions{}); got != 3 {
		t.Errorf("MaxBatchWithin capped at 3 = %d", got)
	}
	if got := md.MaxBatchWithin(100, 256, SessionOptions{}); got != 0 {
		t.Errorf("MaxBatchWithin(100 bytes) = %d, want 0", got)
	}
}
