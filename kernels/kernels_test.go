package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// refGEMM is the naive reference: int64 sums (checked to fit int32) and quant.Requantize.
func refGEMM(a []int8, lda, m int, w []int8, n, k int, bias []int32) []int32 {
	out := make([]int32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int64
			if bias != nil {
				s = int64(bias[j])
			}
			for kk := 0; kk < k; kk++ {
				s += int64(a[i*lda+kk]) * int64(w[j*k+kk])
			}
			if s != int64(int32(s)) {
				panic("reference overflow")
			}
			out[i*n+j] = int32(s)
		}
	}
	return out
}

func refRequant(acc []int32, n int, rq *Requant) []int8 {
	out := make([]int8, len(acc))
	for i, v := range acc {
		c := i % n
		out[i] = int8(quant.Requantize(v, quant.Multiplier{M0: rq.M0[c], Shift: rq.Shift[c]}, rq.ZeroPoint, rq.Min, rq.Max))
	}
	return out
}

type fillKind int

const (
	fillRandom fillKind = iota
	fillMin             // all -128 activations, weights -127
	fillMax             // all 127 activations, weights 127
	fillMixed           // activations +-extreme, weights +-127 with opposite signs
)

func fillInt8(r *rand.Rand, b []int8, kind fillKind, weights bool) {
	for i := range b {
		switch kind {
		case fillRandom:
			v := int8(r.IntN(256) - 128)
			if weights && v == -128 {
				v = -127
			}
			b[i] = v
		case fillMin:
			b[i] = -128
			if weights {
				b[i] = -127
			}
		case fillMax:
			b[i] = 127
		case fillMixed:
			if i%2 == 0 {
				b[i] = 127
			} else {
				b[i] = -128
			}
			if weights {
				b[i] = -b[i] - 1 // -128 for even, 127 for odd -> clip to narrow range
				if b[i] == -128 {
					b[i] = -127
				}
			}
		}
	}
}

func randomRequant(r *rand.Rand, n int, k int) *Requant {
	rq := &Requant{M0: make([]int32, n), Shift: make([]int32, n)}
	for c := range rq.M0 {
		switch r.IntN(6) {
		case 0: // extreme shifts
			rq.M0[c] = int32(1<<30 + r.Int64N(1<<30))
			if r.IntN(2) == 0 {
				rq.Shift[c] = quant.MinShift
			} else {
				rq.Shift[c] = quant.MaxShift
			}
		case 1:
			rq.M0[c] = 0
			rq.Shift[c] = int32(r.IntN(10) - 5)
		default: // a realistic multiplier sIn*sW/sOut ~ 1/(K*64)
			mult, err := quant.QuantizeMultiplier(math.Exp(r.Float64()*4-2) / float64(64*k+1))
			if err != nil {
				panic(err)
			}
			rq.M0[c], rq.Shift[c] = mult.M0, mult.Shift
		}
	}
	switch r.IntN(4) {
	case 0:
		rq.ZeroPoint, rq.Min, rq.Max = -128, -128, 127
	case 1:
		rq.ZeroPoint, rq.Min, rq.Max = 127, -128, 127
	case 2:
		rq.ZeroPoint, rq.Min, rq.Max = -20, -20, 127 // fused ReLU
	default:
		rq.ZeroPoint, rq.Min, rq.Max = int32(r.IntN(256)-128), -128, 127
	}
	return rq
}

// testOnlyImpls are extra implementations exercised by the tests only (see x86_amd64_test.go).
var testOnlyImpls []*impl

// allImpls returns every implementation to test: the available paths and the test-only ones.
func allImpls() []*impl { return append(append([]*impl{}, impls...), testOnlyImpls...) }

// forEachPath runs f once per implementation available on this CPU and build.
func forEachPath(t *testing.T, f func(t *testing.T, p *impl)) {
	for _, p := range allImpls() {
		t.Run(p.name, func(t *testing.T) { f(t, p) })
	}
}

func TestGEMMHandComputed(t *testing.T) {
	// a = [[1 2 3] [-4 5 -6]], w = [[1 0 -1] [2 2 2]], bias = [10, -3].
	a := []int8{1, 2, 3, -4, 5, -6}
	w, err := PackInt8([]int8{1, 0, -1, 2, 2, 2}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	bias := []int32{10, -3}
	want32 := []int32{1 - 3 + 10, 12 - 3, -4 + 6 + 10, -10 - 3}
	// Multiplier 0.5 (M0 = 2^30, Shift 0): round half up of acc/2; zero point 1; clamp [-3, 5].
	rq := &Requant{M0: []int32{1 << 30, 1 << 30}, Shift: []int32{0, 0}, ZeroPoint: 1, Min: -3, Max: 5}
	want8 := []int8{5, 5, 5, -3} // 8/2+1=5, 9/2=4.5->5 ->6 clamp 5, 12/2+1=7->5, -13/2=-6.5->-6 ->-5 clamp -3
	forEachPath(t, func(t *testing.T, p *impl) {
		got32 := make([]int32, 4)
		gemmInt32(p, got32, 2, a, 3, 2, w, bias)
		if fmt.Sprint(got32) != fmt.Sprint(want32) {
			t.Errorf("int32: got %v want %v", got32, want32)
		}
		got8 := make([]int8, 4)
		gemmInt8(p, got8, 2, a, 3, 2, w, bias, rq)
		if fmt.Sprint(got8) != fmt.Sprint(want8) {
			t.Errorf("int8: got %v want %v", got8, want8)
		}
	})
}

func TestRequantizeInt32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 21 // 16 + 4 + 1: vector chunks and a scalar tail
	rq := randomRequant(r, n, 100)
	src := make([]int32, 9*n)
	for i := range src {
		switch i % 5 {
		case 0:
			src[i] = math.MaxInt32
		case 1:
			src[i] = math.MinInt32
		default:
			src[i] = int32(r.Uint32())
		}
	}
	got := make([]int8, len(src))
	want := refRequant(src, n, rq)
	for _, p := range allImpls() {
		clear(got)
		if p.requant != nil {
			p.requant(got, src, n, rq)
		} else {
			RequantizeInt32(got, src, n, rq)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: index %d: got %d want %d", p.name, i, got[i], want[i])
			}
		}
	}
	// Zero points far outside the int8 range (the vector epilogues fall back or stay exact).
	for _, zp := range []int32{math.MinInt32, math.MaxInt32, -1 << 30} {
		big := *rq
		big.ZeroPoint = zp
		want := refRequant(src, n, &big)
		for _, p := range allImpls() {
			clear(got)
			if p.requant != nil {
				p.requant(got, src, n, &big)
			} else {
				RequantizeInt32(got, src, n, &big)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s zp %d: index %d: got %d want %d", p.name, zp, i, got[i], want[i])
				}
			}
		}
	}
	// ties round toward +inf: 3/2 -> 2, -3/2 -> -1
	half := &Requant{M0: []int32{1 << 30}, Shift: []int32{0}, Min: -128, Max: 127}
	RequantizeInt32(got[:2], []int32{3, -3}, 1, half)
	if got[0] != 2 || got[1] != -1 {
		t.Errorf("ties: got %v, want [2 -1]", got[:2])
	}
}

// TestGEMMAllPaths compares every path with the naive reference on random and adversarial
// inputs, odd sizes and unaligned sub-slices with padded leading dimensions.
func TestGEMMAllPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ks := []int{1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 129, 255, 257}
	sizes := []int{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 48, 49, 63, 64, 65}
	if testing.Short() {
		ks = []int{1, 3, 4, 17, 64, 65, 129}
		sizes = []int{1, 2, 5, 8, 16, 17, 33, 48, 65}
	}
	type tcase struct {
		m, n, k int
		kind    fillKind
	}
	var cases []tcase
	for _, k := range ks {
		for range 3 {
			cases = append(cases, tcase{sizes[r.IntN(len(sizes))], sizes[r.IntN(len(sizes))], k, fillKind(r.IntN(4))})
		}
	}
	for _, m := range sizes {
		cases = append(cases, tcase{m, sizes[r.IntN(len(sizes))], ks[r.IntN(len(ks))], fillRandom})
		cases = append(cases, tcase{sizes[r.IntN(len(sizes))], m, ks[r.IntN(len(ks))], fillRandom})
	}
	for _, tc := range cases {
		m, n, k := tc.m, tc.n, tc.k
		off := 1 + r.IntN(7) // unaligned start
		lda := k + r.IntN(3) // padded rows
		ldd := n + r.IntN(3) //
		abuf := make([]int8, off+(m-1)*lda+k)
		a := abuf[off:]
		fillInt8(r, a, tc.kind, false)
		wraw := make([]int8, n*k)
		fillInt8(r, wraw, tc.kind, true)
		w, err := PackInt8(wraw, n, k)
		if err != nil {
			t.Fatal(err)
		}
		var bias []int32
		if r.IntN(4) != 0 {
			bias = make([]int32, n)
			for j := range bias {
				bias[j] = int32(r.IntN(1<<20) - 1<<19)
			}
		}
		rq := randomRequant(r, n, k)
		want32 := refGEMM(a, lda, m, wraw, n, k, bias)
		want8 := refRequant(want32, n, rq)
		name := fmt.Sprintf("m%d_n%d_k%d_fill%d", m, n, k, tc.kind)
		for _, p := range allImpls() {
			got32 := make([]int32, off+(m-1)*ldd+n)
			gemmInt32(p, got32[off:], ldd, a, lda, m, w, bias)
			got8 := make([]int8, off+(m-1)*ldd+n)
			gemmInt8(p, got8[off:], ldd, a, lda, m, w, bias, rq)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					if g, w := got32[off+i*ldd+j], want32[i*n+j]; g != w {
						t.Fatalf("%s %s int32 [%d][%d]: got %d want %d", p.name, name, i, j, g, w)
					}
					if g, w := got8[off+i*ldd+j], want8[i*n+j]; g != w {
						t.Fatalf("%s %s int8 [%d][%d]: got %d want %d (acc %d)", p.name, name, i, j, g, w, want32[i*n+j])
					}
				}
			}
			// Nothing outside the output rows may be written.
			for i := 0; i < off; i++ {
				if got32[i] != 0 || got8[i] != 0 {
					t.Fatalf("%s %s: wrote before dst", p.name, name)
				}
			}
			for i := 0; i+1 < m; i++ {
				for j := n; j < ldd; j++ {
					if got32[off+i*ldd+j] != 0 || got8[off+i*ldd+j] != 0 {
						t.Fatalf("%s %s: wrote into the row padding", p.name, name)
					}
				}
			}
		}
	}
}

// TestGEMMThreaded forces the threaded driver on medium problems and runs concurrent calls
// (meaningful under -race).
func TestGEMMThreaded(t *testing.T) {
	old := parallelMinMACs
	parallelMinMACs = 1
	defer func() { parallelMinMACs = old }()
	r := rand.New(rand.NewPCG(5, 6))
	shapes := [][3]int{{1, 300, 70}, {3, 520, 33}, {200, 40, 20}, {130, 65, 9}, {5, 1, 40}, {1, 17, 3}}
	forEachPath(t, func(t *testing.T, p *impl) {
		var wg sync.WaitGroup
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			a := make([]int8, m*k)
			fillInt8(r, a, fillRandom, false)
			wraw := make([]int8, n*k)
			fillInt8(r, wraw, fillRandom, true)
			w, _ := PackInt8(wraw, n, k)
			rq := randomRequant(r, n, k)
			want := refRequant(refGEMM(a, k, m, wraw, n, k, nil), n, rq)
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got := make([]int8, m*n)
					gemmInt8(p, got, n, a, k, m, w, nil, rq)
					got32 := make([]int32, m*n)
					gemmInt32(p, got32, n, a, k, m, w, nil)
					if fmt.Sprint(refRequant(got32, n, rq)) != fmt.Sprint(want) {
						t.Errorf("m%d n%d k%d: int32 path differs", m, n, k)
					}
					for i := range got {
						if got[i] != want[i] {
							t.Errorf("m%d n%d k%d: index %d got %d want %d", m, n, k, i, got[i], want[i])
							return
						}
					}
				}()
			}
		}
		wg.Wait()
	})
}

func TestPackInt8Errors(t *testing.T) {
	tests := []struct {
		name string
		w    []int8
		n, k int
	}{
		{"length", make([]int8, 5), 2, 3},
		{"minus128", []int8{1, -128}, 1, 2},
		{"zero rows", nil, 0, 3},
		{"too deep", make([]int8, 1<<16+1), 1, 1<<16 + 1},
	}
	for _, tc := range tests {
		if _, err := PackInt8(tc.w, tc.n, tc.k); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	p, err := PackInt8([]int8{1, 2, 3, -4, 5, -127}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if p.N() != 2 || p.K() != 3 || fmt.Sprint(p.RowSums()) != "[6 -126]" {
		t.Errorf("N=%d K=%d sums=%v", p.N(), p.K(), p.RowSums())
	}
}

func TestPanics(t *testing.T) {
	w, _ := PackInt8(make([]int8, 6), 2, 3)
	rq := &Requant{M0: []int32{1 << 30, 1 << 30}, Shift: []int32{0, 0}, Min: -128, Max: 127}
	tests := []struct {
		name string
		f    func()
	}{
		{"short a", func() { GEMMInt8(make([]int8, 4), 2, make([]int8, 5), 3, 2, w, nil, rq) }},
		{"short dst", func() { GEMMInt8(make([]int8, 3), 2, make([]int8, 6), 3, 2, w, nil, rq) }},
		{"bias", func() { GEMMInt8Int32(make([]int32, 4), 2, make([]int8, 6), 3, 2, w, []int32{1}) }},
		{"multipliers", func() { GEMMInt8(make([]int8, 4), 2, make([]int8, 6), 3, 2, w, nil, &Requant{Min: -128, Max: 127}) }},
		{"clamp", func() {
			RequantizeInt32(make([]int8, 2), make([]int32, 2), 2, &Requant{M0: rq.M0, Shift: rq.Shift, Min: 0, Max: 200})
		}},
		{"shift", func() {
			RequantizeInt32(make([]int8, 2), make([]int32, 2), 2, &Requant{M0: rq.M0, Shift: []int32{0, 31}, Max: 1})
		}},
	}
	for _, tc := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}

func TestPathSelection(t *testing.T) {
	names := Paths()
	if names[0] != "portable" {
		t.Errorf("Paths()[0] = %q", names[0])
	}
	defer SetPath(Path())
	for _, n := range names {
		if err := SetPath(n); err != nil || Path() != n {
			t.Errorf("SetPath(%q): %v, Path() = %q", n, err, Path())
		}
	}
	if err := SetPath("no-such-path"); err == nil {
		t.Error("SetPath accepted an unknown path")
	}
	if SelectionError() != nil {
		t.Logf("QATGO_KERNELS: %v", SelectionError())
	}
}

// TestEnvSelection re-runs the test binary with QATGO_KERNELS set and checks the choice made
// at start (skipped where the binary cannot be re-executed, e.g. under qemu-user).
func TestEnvSelection(t *testing.T) {
	if want := os.Getenv("QATGO_KERNELS_EXPECT"); want != "" {
		if Path() != want {
			t.Fatalf("QATGO_KERNELS=%q: Path() = %q, want %q (SelectionError: %v)", os.Getenv("QATGO_KERNELS"), Path(), want, SelectionError())
		}
		if (os.Getenv("QATGO_KERNELS") != want) != (SelectionError() != nil) {
			t.Fatalf("SelectionError() = %v", SelectionError())
		}
		return
	}
	best := impls[len(impls)-1].name
	for _, tc := range []struct{ env, want string }{
		{"portable", "portable"},
		{best, best},
		{"no-such-path", best},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvSelection$", "-test.count=1")
		cmd.Env = append(os.Environ(), "QATGO_KERNELS="+tc.env, "QATGO_KERNELS_EXPECT="+tc.want)
		out, err := cmd.CombinedOutput()
		if err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				t.Skipf("cannot re-execute the test binary: %v", err)
			}
			t.Errorf("QATGO_KERNELS=%s: %v\n%s", tc.env, err, out)
		}
	}
}
