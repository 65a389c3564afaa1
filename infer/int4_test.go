package infer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// int4FCModel builds input[k] -> FC(int4, n1, ReLU) -> FC(int4, n2) -> FC(int4, n3 with K = n2).
func int4FCModel(t testing.TB, r *rand.Rand, k, n1, n2, n3 int) *qmodel.Model {
	b := qmodel.NewBuilder("int4fc")
	x := b.Input("x", qmodel.Int8, []int{k}, qmodel.PerTensor(0.02, 5))
	layer := func(name string, in qmodel.TensorID, k, n int, act qmodel.Activation, sOut float32, zOut int32) qmodel.TensorID {
		bias := make([]int32, n)
		for i := range bias {
			bias[i] = int32(r.IntN(2001) - 1000)
		}
		w := qmodel.Weights{Values: randInt8s(r, n*k, -7, 7), Shape: []int{n, k}, Scales: randScales(r, n, 0.01, 0.05), Int4: true}
		return b.FullyConnected(name, in, w, bias, act, quant.Params{Scale: sOut, ZeroPoint: zOut})
	}
	h := layer("fc1", x, k, n1, qmodel.ActReLU, 0.02*float32(k)/40, -128)
	h = layer("fc2", h, n1, n2, qmodel.ActNone, 0.02*float32(n1)/40, 3)
	b.Output(layer("fc3", h, n2, n3, qmodel.ActNone, 0.02*float32(n2)/40, -2))
	return build(t, b)
}

// loadBoth loads m through the int4 path and, as the reference, with int4 weights unpacked to int8.
func loadBoth(t testing.TB, m *qmodel.Model) (int4Model, ref *Model) {
	t.Helper()
	disableInt4 = true
	ref, err := Load(m)
	disableInt4 = false
	if err != nil {
		t.Fatal(err)
	}
	if int4Model, err = Load(m); err != nil {
		t.Fatal(err)
	}
	return int4Model, ref
}

// TestInt4FCMatchesInt8 checks that FullyConnected layers with int4 weights, run with
// kernels.GEMMInt4, give exactly the output of the int8-unpacked path on every kernels path, for
// batch 1 and larger batches, and that a layer whose K is not a multiple of 8 falls back to int8.
func TestInt4FCMatchesInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	type tc struct {
		name          string
		k, n1, n2, n3 int
		wantInt4      []bool
		batches       []int
	}
	cases := []tc{
		{"small", 64, 40, 24, 10, []bool{true, true, true}, []int{1, 3, 17}},
		{"k-not-8", 20, 32, 16, 5, []bool{false, true, true}, []int{1, 4}},
		{"odd-n", 48, 33, 9, 7, []bool{true, false, false}, []int{1, 2}},
	}
	if !testing.Short() {
		// fc1 is 1024x4096 = 4M MACs: large enough for GEMMInt4's multi-threaded GEMV.
		cases = append(cases, tc{"parallel", 4096, 1024, 64, 10, []bool{true, true, true}, []int{1, 3}})
	}
	saved := kernels.Path()
	t.Logf("kernels paths: %v", kernels.Paths())
	defer kernels.SetPath(saved)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := int4FCModel(t, r, c.k, c.n1, c.n2, c.n3)
			md, ref := loadBoth(t, m)
			for i, want := range c.wantInt4 {
				if got := md.steps[i].w4 != nil; got != want {
					t.Errorf("layer %d uses int4 kernels: %v, want %v", i, got, want)
				}
				if ref.steps[i].w4 != nil {
					t.Errorf("reference layer %d uses int4 kernels", i)
				}
			}
			for _, path := range kernels.Paths() {
				if err := kernels.SetPath(path); err != nil {
					t.Fatal(err)
				}
				for _, batch := range c.batches {
					in := randInt8s(r, batch*c.k, -128, 127)
					want, err := ref.NewSession().RunInt8(in, batch)
					if err != nil {
						t.Fatal(err)
					}
					got, err := md.NewSession().RunInt8(in, batch)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, want) {
						t.Errorf("path %s batch %d: int4 output differs from the int8 reference", path, batch)
					}
					// The outputs must not be degenerate (all clamped) for the comparison to mean something.
					if lo, hi := slices.Min(want), slices.Max(want); lo == hi {
						t.Errorf("path %s batch %d: constant output %d", path, batch, lo)
					}
				}
			}
		})
	}
}

// TestInt4FCNoAllocs checks that the int4 FullyConnected path does not allocate after warm-up.
func TestInt4FCNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r := rand.New(rand.NewPCG(43, 44))
	md, _ := loadBoth(t, int4FCModel(t, r, 64, 40, 24, 10))
	if md.steps[0].w4 == nil {
		t.Fatal("int4 path not used")
	}
	s := md.NewSession()
	in := randInt8s(r, 4*64, -128, 127)
	for _, batch := range []int{1, 4} {
		if _, err := s.RunInt8(in[:batch*64], batch); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(20, func() { s.RunInt8(in[:batch*64], batch) }); a != 0 {
			t.Errorf("batch %d: %.1f allocations per run after warm-up, want 0", batch, a)
		}
	}
}

// BenchmarkInt4FC compares one 4096x4096 FullyConnected layer with int4 weights run by
// kernels.GEMMInt4 against the same layer unpacked to int8 (kernels.GEMMInt8), batch 1.
func BenchmarkInt4FC(b *testing.B) {
	const k, n = 4096, 4096
	r := rand.New(rand.NewPCG(45, 46))
	bd := qmodel.NewBuilder("fc4096")
	x := bd.Input("x", qmodel.Int8, []int{k}, qmodel.PerTensor(0.02, 5))
	w := qmodel.Weights{Values: randInt8s(r, n*k, -7, 7), Shape: []int{n, k}, Scales: randScales(r, n, 0.01, 0.05), Int4: true}
	bd.Output(bd.FullyConnected("fc", x, w, nil, qmodel.ActNone, quant.Params{Scale: 2, ZeroPoint: 0}))
	md, ref := loadBoth(b, build(b, bd))
	in := randInt8s(r, k, -128, 127)
	for _, tc := range []struct {
		name string
		md   *Model
	}{{"int4", md}, {"int8", ref}} {
		b.Run(tc.name, func(b *testing.B) {
			s := tc.md.NewSession()
			if _, err := s.RunInt8(in, 1); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.RunInt8(in, 1)
			}
			b.Logf("kernels path %s", kernels.Path())
		})
	}
}
