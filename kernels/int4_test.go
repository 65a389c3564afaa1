package kernels

import (
	"math/rand/v2"
	"testing"
)

func refInt4(a []int8, w []int8, n, k, group int, scales, bias []int32) []int32 {
	out := make([]int32, n)
	groups := k / group
	for j := 0; j < n; j++ {
		var acc int64
		if bias != nil {
			acc = int64(bias[j])
		}
		for g := 0; g < groups; g++ {
			var s int64
			for kk := g * group; kk < (g+1)*group; kk++ {
				s += int64(a[kk]) * int64(w[j*k+kk])
			}
			acc += int64(scales[j*groups+g]) * s
		}
		out[j] = int32(acc)
	}
	return out
}

func TestInt4AllPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	type tc struct{ n, k, group int }
	cases := []tc{{1, 8, 8}, {5, 16, 8}, {17, 64, 32}, {33, 96, 32}, {16, 128, 64}, {65, 256, 128}, {48, 40, 8}, {130, 64, 64}, {97, 24, 24}}
	for _, c := range cases {
		for _, kind := range []fillKind{fillRandom, fillMin, fillMax, fillMixed} {
			w := make([]int8, c.n*c.k)
			for i := range w {
				switch kind {
				case fillRandom:
					w[i] = int8(r.IntN(15) - 7)
				case fillMin:
					w[i] = -7
				case fillMax:
					w[i] = 7
				default:
					w[i] = int8(7 - 14*(i%2))
				}
			}
			groups := c.k / c.group
			scales := make([]int32, c.n*groups)
			for i := range scales {
				scales[i] = int32(r.IntN(256))
			}
			if kind != fillRandom {
				for i := range scales {
					scales[i] = 255
				}
			}
			p, err := PackInt4(w, c.n, c.k, c.group, scales)
			if err != nil {
				t.Fatal(err)
			}
			a := make([]int8, 1+c.k)[1:]
			fillInt8(r, a, kind, false)
			bias := make([]int32, c.n)
			for i := range bias {
				bias[i] = int32(r.IntN(1000))
			}
			want := refInt4(a, w, c.n, c.k, c.group, scales, bias)
			for _, pi := range allImpls() {
				got := make([]int32, c.n)
				pi.gemv4(got, a, p, bias, 0, c.n)
				for j := range got {
					if got[j] != want[j] {
						t.Fatalf("%s n%d k%d g%d fill %d: [%d] got %d want %d", pi.name, c.n, c.k, c.group, kind, j, got[j], want[j])
					}
				}
			}
			// The public entry points, with the epilogue and two rows, on every path.
			rq := randomRequant(r, c.n, c.k*64)
			a2 := append(append([]int8{}, a...), a...)
			want8 := refRequant(append(append([]int32{}, want...), want...), c.n, rq)
			for _, path := range Paths() {
				if err := SetPath(path); err != nil {
					t.Fatal(err)
				}
				got8 := make([]int8, 2*c.n)
				GEMMInt4(got8, c.n, a2, c.k, 2, p, bias, rq)
				for i := range got8 {
					if got8[i] != want8[i] {
						t.Fatalf("GEMMInt4 (%s): [%d] got %d want %d", path, i, got8[i], want8[i])
					}
				}
			}
			if err := SetPath(Paths()[len(Paths())-1]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestInt4Threaded splits the output channels over threads (j0 > 0 in the kernels).
func TestInt4Threaded(t *testing.T) {
	old := parallelMinMACs
	parallelMinMACs = 1
	defer func() { parallelMinMACs = old }()
	r := rand.New(rand.NewPCG(15, 16))
	n, k, g := 200, 256, 64
	w := make([]int8, n*k)
	for i := range w {
		w[i] = int8(r.IntN(15) - 7)
	}
	scales := make([]int32, n*k/g)
	for i := range scales {
		scales[i] = int32(r.IntN(300))
	}
	p, err := PackInt4(w, n, k, g, scales)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]int8, k)
	fillInt8(r, a, fillRandom, false)
	want := refInt4(a, w, n, k, g, scales, nil)
	forEachPath(t, func(t *testing.T, pi *impl) {
		got := make([]int32, n)
		gemv4(pi, got, a, p, make([]int32, n))
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("[%d] got %d want %d", j, got[j], want[j])
			}
		}
	})
}

func TestPackInt4Errors(t *testing.T) {
	w := make([]int8, 32)
	s := []int32{1, 1}
	if _, err := PackInt4(w, 2, 16, 6, s); err == nil {
		t.Error("group 6 accepted")
	}
	if _, err := PackInt4(w, 2, 16, 16, []int32{1, -1}); err == nil {
		t.Error("negative scale accepted")
	}
	w[3] = 8
	if _, err := PackInt4(w, 2, 16, 16, s); err == nil {
		t.Error("weight 8 accepted")
	}
	w[3] = 0
	big := make([]int8, 1<<16)
	if _, err := PackInt4(big, 1, 1<<16, 8, fullScales(1<<13, MaxInt4Scale)); err == nil {
		t.Error("overflowing scales accepted")
	}
	p, err := PackInt4([]int8{1, 2, 3, 4, 5, 6, 7, -7, 0, 0, 0, 0, 0, 0, 0, 1}, 1, 16, 8, []int32{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.RowSums()[0] != 2*21+3*1 || p.GroupSize() != 8 || p.N() != 1 || p.K() != 16 {
		t.Errorf("RowSums %v", p.RowSums())
	}
}

func fullScales(n int, v int32) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = v
	}
	return s
}
