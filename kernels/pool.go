package kernels

import "sync"

// freeList is a stack of reusable objects (task descriptors and scratch buffers). Unlike
// sync.Pool it never drops objects (not at garbage collections, not when goroutines move
// between Ps), so a steady stream of calls allocates nothing once the list holds as many
// objects as the peak number of concurrent users; the price is that those objects stay
// allocated for the life of the process.
type freeList[T any] struct {
	mu    sync.Mutex
	items []*T
}

// Get returns a stored object, or a new zero one if the list is empty.
func (f *freeList[T]) Get() *T {
	f.mu.Lock()
	if n := len(f.items); n > 0 {
		p := f.items[n-1]
		f.items[n-1] = nil
		f.items = f.items[:n-1]
		f.mu.Unlock()
		return p
	}
	f.mu.Unlock()
	return new(T)
}

// Put stores p for reuse.
func (f *freeList[T]) Put(p *T) {
	f.mu.Lock()
	f.items = append(f.items, p)
	f.mu.Unlock()
}
