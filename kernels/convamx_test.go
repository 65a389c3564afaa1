//go:build amd64 && !purego

package kernels

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// TestFusedConvWithoutAMX runs TestFusedConv with the AMX kernels turned off, so that the AMX
// shapes also take the AVX-512 VNNI kernels, as on CPUs without AMX.
func TestFusedConvWithoutAMX(t *testing.T) {
	if !hasAMX {
		t.Skip("no AMX-INT8 (or the OS refused it): TestFusedConv already runs the VNNI kernels")
	}
	hasAMX = false
	defer func() { hasAMX = true }()
	TestFusedConv(t)
}

// TestAMXConcurrent runs one AMX convolution on several goroutines at once while the garbage
// collector preempts them with signals: every result must equal the single-threaded one (the
// tile registers are per thread and each kernel call configures its own).
func TestAMXConcurrent(t *testing.T) {
	if !hasAMX {
		t.Skip("no AMX-INT8")
	}
	s := fusedShapes[len(convShapes)+1] // 14x14x16 -> 32
	r := rand.New(rand.NewPCG(43, 44))
	wraw := make([]int8, s.OutC*s.K())
	fillInt8(r, wraw, fillRandom, true)
	w, err := PackInt8(wraw, s.OutC, s.K())
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFusedConv(s, true, -128, w, nil, randomRequant(r, s.OutC, s.K()))
	if err != nil {
		t.Fatal(err)
	}
	const batch = 4
	src := make([]int8, batch*s.InH*s.InW*s.InC)
	fillInt8(r, src, fillRandom, false)
	want := make([]int8, batch*f.OutH()*f.OutW()*s.OutC)
	var sc FusedScratch
	f.Run(want, src, batch, &sc)
	iters := 300
	if testing.Short() {
		iters = 50
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc FusedScratch
			got := make([]int8, len(want))
			for i := 0; i < iters; i++ {
				f.Run(got, src, batch, &sc)
				for j := range want {
					if got[j] != want[j] {
						errs <- "result differs from the single-threaded one"
						return
					}
				}
				if i%16 == 0 {
					runtime.GC()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
