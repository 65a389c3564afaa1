package quant

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestRoundTiesAwayFromZero(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0.5, 1}, {-0.5, -1}, {1.5, 2}, {2.5, 3}, {-2.5, -3}, {0.49999997, 0}, {-0, 0}, {126.5, 127},
	} {
		if got := Round(tc.in); got != tc.want {
			t.Errorf("Round(%v)=%v want %v", tc.in, got, tc.want)
		}
		if got := Round(float32(tc.in)); float64(got) != tc.want {
			t.Errorf("Round(float32 %v)=%v want %v", tc.in, got, tc.want)
		}
	}
}

func TestQuantizeValue(t *testing.T) {
	r := Signed(8)
	for _, tc := range []struct {
		x     float32
		scale float32
		zp    int32
		want  int32
	}{
		{0, 0.1, 5, 5},
		{0.25, 0.1, 0, 3},   // 2.5 -> 3
		{-0.25, 0.1, 0, -3}, // -2.5 -> -3
		{1000, 0.1, 0, 127},
		{-1000, 0.1, 3, -128},
		{12.7, 0.1, 0, 127},
		{float32(math.Inf(1)), 1, 0, 127},
		{float32(math.Inf(-1)), 1, 0, -128},
		{float32(math.NaN()), 1, 7, 7},
		{1e30, 1e-30, 0, 127}, // quotient overflows to +Inf
		{3, 1e30, 0, 0},
	} {
		if got := QuantizeValue(tc.x, tc.scale, tc.zp, r.Min, r.Max); got != tc.want {
			t.Errorf("QuantizeValue(%v,%v,%v)=%v want %v", tc.x, tc.scale, tc.zp, got, tc.want)
		}
	}
}

func TestRanges(t *testing.T) {
	for _, tc := range []struct {
		got, want Range
	}{
		{NarrowSigned(8), Range{-127, 127}}, {NarrowSigned(4), Range{-7, 7}}, {NarrowSigned(2), Range{-1, 1}},
		{Signed(8), Range{-128, 127}}, {Signed(4), Range{-8, 7}}, {Unsigned(8), Range{0, 255}},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v want %v", tc.got, tc.want)
		}
	}
}

func TestAsymmetricParams(t *testing.T) {
	p, err := AsymmetricParams(-1, 3, Signed(8))
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(4.0 / 255); p.Scale != want {
		t.Fatalf("scale %v want %v", p.Scale, want)
	}
	// real 0 must be exactly representable: dequant(zp) == 0 and quantize(lo) == qmin.
	if got := QuantizeValue(float32(-1), p.Scale, p.ZeroPoint, -128, 127); got != -128 {
		t.Fatalf("lo maps to %d", got)
	}
	if p.ZeroPoint != -128+64 {
		t.Fatalf("zp %d", p.ZeroPoint)
	}
	p, _ = AsymmetricParams(0, 0, Signed(8))
	if p.Scale != MinScale {
		t.Fatalf("degenerate scale %v", p.Scale)
	}
	if _, err := AsymmetricParams(math.NaN(), 1, Signed(8)); err == nil {
		t.Fatal("NaN range accepted")
	}
	s, _ := SymmetricParams(-2, 1, NarrowSigned(8))
	if s.Scale != float32(2.0/127) || s.ZeroPoint != 0 {
		t.Fatalf("symmetric %+v", s)
	}
}

// exactRequant computes round-half-up(acc*m0/2^(31-shift)) with big.Rat arithmetic.
func exactRequant(acc, m0, shift int32) int64 {
	r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(acc)), big.NewInt(int64(m0))),
		new(big.Int).Lsh(big.NewInt(1), uint(31-shift)))
	r.Add(r, big.NewRat(1, 2))
	// floor(r)
	q := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean division: floor for positive denominators
	return q.Int64()
}

func TestMultiplyByQuantizedMultiplierExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	accs := []int32{0, 1, -1, math.MaxInt32, math.MinInt32, 1 << 30, -(1 << 30), 12345, -12345}
	for i := 0; i < 20000; i++ {
		var acc int32
		if i < len(accs)*50 {
			acc = accs[i%len(accs)]
		} else {
			acc = int32(rng.Uint32())
		}
		m0 := int32(1<<30 + rng.IntN(1<<30))
		if i%7 == 0 {
			m0 = math.MaxInt32
		}
		shift := int32(MinShift + rng.IntN(MaxShift-MinShift+1))
		want := exactRequant(acc, m0, shift)
		if want > math.MaxInt32 {
			want = math.MaxInt32
		}
		if want < math.MinInt32 {
			want = math.MinInt32
		}
		if got := MultiplyByQuantizedMultiplier(acc, m0, shift); int64(got) != want {
			t.Fatalf("acc=%d m0=%d shift=%d: got %d want %d", acc, m0, shift, got, want)
		}
	}
}

func TestQuantizeMultiplier(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10000; i++ {
		m := math.Ldexp(rng.Float64()+0.5, rng.IntN(50)-35)
		q, err := QuantizeMultiplier(m)
		if err != nil {
			t.Fatal(err)
		}
		if q.M0 == 0 {
			if m >= math.Ldexp(1, MinShift-1) {
				t.Fatalf("%v quantized to zero", m)
			}
			continue
		}
		if !q.Valid() || q.M0 < 1<<30 {
			t.Fatalf("%v -> invalid %+v", m, q)
		}
		if rel := math.Abs(q.Float()-m) / m; rel > 1.0/(1<<30) {
			t.Fatalf("%v -> %v rel err %v", m, q.Float(), rel)
		}
	}
	if _, err := QuantizeMultiplier(-1); err == nil {
		t.Fatal("negative accepted")
	}
	if _, err := QuantizeMultiplier(math.Ldexp(1, 40)); err == nil {
		t.Fatal("huge accepted")
	}
	q, _ := QuantizeMultiplier(1 - 1e-12) // rounds up to 2^31: must renormalise
	if q.M0 != 1<<30 || q.Shift != 1 {
		t.Fatalf("renormalise: %+v", q)
	}
}

func TestRequantizeClamp(t *testing.T) {
	m, _ := QuantizeMultiplier(0.5)
	if got := Requantize(1000, m, 10, -128, 127); got != 127 {
		t.Fatal(got)
	}
	if got := Requantize(-3, m, 0, 0, 127); got != 0 { // ReLU fused: clamp at zero point
		t.Fatal(got)
	}
	if got := Requantize(-3, m, 0, -128, 127); got != -1 { // -1.5 rounds half up to -1
		t.Fatal(got)
	}
}

func TestInt4RoundTrip(t *testing.T) {
	src := []int8{-8, 7, 0, -1, 3, -7, 5}
	packed := PackInt4(make([]byte, 4), src)
	if len(packed) != 4 || packed[0] != 0x78 {
		t.Fatalf("packed % x", packed)
	}
	got := UnpackInt4(make([]int8, len(src)), packed, len(src))
	for i := range src {
		if got[i] != src[i] {
			t.Fatalf("%d: %d != %d", i, got[i], src[i])
		}
	}
}

func TestRoundMatchesMathRound(t *testing.T) {
	check32 := func(x float32) {
		want := float32(math.Round(float64(x)))
		got := Round(x)
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("Round(%v [%08x]) = %v, math.Round gives %v", x, math.Float32bits(x), got, want)
		}
	}
	check64 := func(x float64) {
		want := math.Round(x)
		got := Round(x)
		if math.Float64bits(got) != math.Float64bits(want) && !(got != got && want != want) {
			t.Fatalf("Round(%v [%016x]) = %v, math.Round gives %v", x, math.Float64bits(x), got, want)
		}
	}
	edges := []float64{0, math.Copysign(0, -1), 0.5, -0.5, 0.49999997, -0.49999997, 0.49999999999999994,
		-0.49999999999999994, 1.5, 2.5, 8388607.5, -8388607.5, 8388608, 1 << 30, 1<<52 - 0.5, -(1<<52 - 0.5),
		1 << 52, 1<<53 + 2, math.Inf(1), math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64,
		math.SmallestNonzeroFloat32, math.MaxFloat32, math.MaxFloat64}
	for _, x := range edges {
		check64(x)
		check32(float32(x))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 1_000_000; i++ {
		check32(math.Float32frombits(rng.Uint32()))
		check32(float32(rng.NormFloat64() * 300))
		check64(math.Float64frombits(rng.Uint64()))
		check64(rng.NormFloat64() * 300)
		check64(float64(rng.Int64N(1<<40)) / 4) // many exact .5 and .25 fractions
	}
}

func BenchmarkRoundFloat32(b *testing.B) {
	xs := make([]float32, 1024)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range xs {
		xs[i] = float32(rng.NormFloat64() * 100)
	}
	b.Run("Round", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				xs[i] = Round(x) + 0.25
			}
		}
	})
	b.Run("math.Round", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				xs[i] = float32(math.Round(float64(x))) + 0.25
			}
		}
	})
	q := make([]int32, len(xs))
	b.Run("QuantizeValue", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				q[i] = QuantizeValue(x, 0.37, 3, -128, 127)
			}
		}
	})
}

func TestWeightRescale(t *testing.T) {
	for _, tc := range []struct{ m, storage, want int32 }{
		{0, 127, 1}, {127, 127, 1}, {64, 127, 1}, {63, 127, 2}, {1, 127, 127}, {3, 127, 42},
		{7, 7, 1}, {4, 7, 1}, {3, 7, 2}, {1, 7, 7}, {2, 7, 3},
	} {
		if got := WeightRescale(tc.m, tc.storage); got != tc.want {
			t.Errorf("WeightRescale(%d, %d) = %d, want %d", tc.m, tc.storage, got, tc.want)
		}
		if k := WeightRescale(tc.m, tc.storage); tc.m*k > tc.storage {
			t.Errorf("WeightRescale(%d, %d) = %d overflows storage", tc.m, tc.storage, k)
		}
	}
	if WeightStorageMax(4) != 7 || WeightStorageMax(2) != 7 || WeightStorageMax(8) != 127 || WeightStorageMax(5) != 127 {
		t.Fatal("WeightStorageMax")
	}
}
