package infer

import (
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// TestAddRunAllPairs checks the runtime's Add (addRun: the vector kernel where the path has one,
// the table otherwise) against add, TFLite's arithmetic per element, on all 65,536 input pairs
// (in an order that is not the table's, with a length that leaves a tail), on every kernels
// path, for random scales, zero points and activation ranges.
func TestAddRunAllPairs(t *testing.T) {
	defer kernels.SetPath(kernels.Path())
	r := rand.New(rand.NewPCG(31, 32))
	const n = 1<<16 + 7
	a, b := make([]int8, n), make([]int8, n)
	perm := r.Perm(1 << 16)
	for i := range a {
		p := perm[i%(1<<16)]
		a[i], b[i] = int8(p>>8), int8(p)
	}
	want, got := make([]int8, n), make([]int8, n)
	vector := 0
	for trial := 0; trial < 12; trial++ {
		sa, sb, so := float32(0.001+r.Float64()*0.05), float32(0.001+r.Float64()*0.05), float32(0.001+r.Float64()*0.1)
		if trial == 0 {
			so = sa * 1e-3 // large output multiplier: saturating products
		}
		st := &step{}
		var err error
		if st.mA, st.mB, st.mOut, err = qmodel.AddMultipliers(sa, sb, so); err != nil {
			t.Fatal(err)
		}
		st.zA, st.zB, st.zOut = int32(r.IntN(256)-128), int32(r.IntN(256)-128), int32(r.IntN(256)-128)
		act := []qmodel.Activation{qmodel.ActNone, qmodel.ActReLU, qmodel.ActReLU6}[trial%3]
		st.lo, st.hi = qmodel.ActivationRange(act, quant.Params{Scale: so, ZeroPoint: st.zOut})
		st.addTab = addTable(st)
		st.addLUT = addInputTables(st)
		if st.addLUT == nil {
			t.Fatalf("trial %d: no input tables for an int8 output range", trial)
		}
		add(want, a, b, st)
		for _, p := range kernels.Paths() {
			if err := kernels.SetPath(p); err != nil {
				t.Fatal(err)
			}
			clear(got)
			addRun(got, a, b, st)
			if addLUTVector(got[:16], a[:16], b[:16], st) > 0 {
				vector++
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("trial %d path %s: a=%d b=%d got %d want %d", trial, p, a[i], b[i], got[i], want[i])
				}
			}
		}
	}
	t.Logf("vector kernel ran in %d of the path runs", vector)
}

// BenchmarkAddCNN compares the table Add (addLookup) with addRun on 16 images of 28x28x16
// (DSNet's residual Adds), in process CPU time per image.
func BenchmarkAddCNN(b *testing.B) {
	r := rand.New(rand.NewPCG(33, 34))
	const per = 28 * 28 * 16
	n := 16 * per
	x, y, dst := randInt8s(r, n, -128, 127), randInt8s(r, n, -128, 127), make([]int8, n)
	st := &step{zA: -128, zB: 6, zOut: -128}
	var err error
	if st.mA, st.mB, st.mOut, err = qmodel.AddMultipliers(0.0146, 0.0225, 0.0164); err != nil {
		b.Fatal(err)
	}
	st.lo, st.hi = qmodel.ActivationRange(qmodel.ActReLU, quant.Params{Scale: 0.0164, ZeroPoint: -128})
	st.addTab, st.addLUT = addTable(st), addInputTables(st)
	for _, tc := range []struct {
		name string
		f    func(dst, a, b []int8, st *step)
	}{{"lookup", addLookup}, {"gather", func(dst, a, b []int8, st *step) { addGather = true; addRun(dst, a, b, st); addGather = false }}, {"run", addRun}} {
		b.Run(tc.name, func(b *testing.B) {
			cpu0 := processCPU()
			for range b.N {
				tc.f(dst, x, y, st)
			}
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N*16), "cpu-us/image")
		})
	}
}
