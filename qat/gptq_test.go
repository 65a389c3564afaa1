package qat

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// correlatedInputs returns X [n, in] = Z A with Z ~ N(0,1) and a random mixing A, plus one
// outlier channel: inputs with the strong correlations GPTQ exploits.
func correlatedInputs(rng *rand.Rand, n, in int) []float64 {
	a := make([]float64, in*in)
	for i := range a {
		a[i] = rng.NormFloat64()
		if i/in == i%in {
			a[i] += 2
		}
	}
	x := make([]float64, n*in)
	z := make([]float64, in)
	for r := 0; r < n; r++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for j := 0; j < in; j++ {
			var s float64
			for i := 0; i < in; i++ {
				s += z[i] * a[i*in+j]
			}
			if j == 3 {
				s *= 8
			}
			x[r*in+j] = s
		}
	}
	return x
}

func randomWeight(rng *rand.Rand, out, in int) []float64 {
	w := make([]float64, out*in)
	for i := range w {
		w[i] = rng.NormFloat64() / math.Sqrt(float64(in))
	}
	return w
}

func hessianOf(t *testing.T, x []float64, in int) []float64 {
	t.Helper()
	s := NewLinearInputStats(true)
	if err := s.ObserveRows("x", x, in); err != nil {
		t.Fatal(err)
	}
	h, err := s.Hessian("x")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// outputError returns ||X W^T - X Q^T||_F^2.
func outputError(x, w, q []float64, out, in int) float64 {
	n := len(x) / in
	var e float64
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var d float64
			for i := 0; i < in; i++ {
				d += x[r*in+i] * (w[o*in+i] - q[o*in+i])
			}
			e += d * d
		}
	}
	return e
}

func TestGPTQBeatsRoundToNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, out, in = 512, 24, 64
	x := correlatedInputs(rng, n, in)
	h := hessianOf(t, x, in)
	w := randomWeight(rng, out, in)
	for _, c := range []GPTQConfig{
		{Bits: 4}, {Bits: 3, GroupSize: 16}, {Bits: 4, GroupSize: 32, ActOrder: true},
		{Bits: 2, GroupSize: 16, ActOrder: true}, {Bits: 8}, {Bits: 4, BlockSize: 8},
	} {
		rtn, err := RoundToNearest(w, out, in, c)
		if err != nil {
			t.Fatal(err)
		}
		g, err := GPTQ(w, out, in, h, c)
		if err != nil {
			t.Fatal(err)
		}
		er, eg := outputError(x, w, rtn.Weights, out, in), outputError(x, w, g.Weights, out, in)
		t.Logf("%+v: ||XW^T-XQ^T||^2 RTN %.4g, GPTQ %.4g (ratio %.3f)", c, er, eg, eg/er)
		if !(eg < 0.8*er) {
			t.Errorf("%+v: GPTQ error %.4g is not clearly below RTN's %.4g", c, eg, er)
		}
		checkOnGrid(t, g)
	}
}

// checkOnGrid checks that every weight is scale*level with the level in the narrow range and that
// no level could be produced by a coarser or finer grid than the returned scales claim.
func checkOnGrid(t *testing.T, q *QuantizedWeight) {
	t.Helper()
	qmax := int8(1<<(q.Bits-1) - 1)
	for r := 0; r < q.Out; r++ {
		for c := 0; c < q.In; c++ {
			l := q.Levels[r*q.In+c]
			if l < -qmax || l > qmax {
				t.Fatalf("level %d outside [-%d, %d]", l, qmax, qmax)
			}
			if want := float64(float32(l) * q.Scales[q.slice(r, c)]); q.Weights[r*q.In+c] != want {
				t.Fatalf("weight (%d,%d) = %v, want scale*level %v", r, c, q.Weights[r*q.In+c], want)
			}
		}
	}
}

func TestGPTQIdentityHessianIsRoundToNearest(t *testing.T) {
	// With H = I (dampened: (1+lambda) I) the Cholesky factor of H^-1 is diagonal, so no error
	// is fed to other columns and every column is rounded as it is: GPTQ = RTN, levels and scales.
	rng := rand.New(rand.NewPCG(5, 6))
	const out, in = 7, 32
	w := randomWeight(rng, out, in)
	h := make([]float64, in*in)
	for i := 0; i < in; i++ {
		h[i*in+i] = 1
	}
	for _, c := range []GPTQConfig{{Bits: 4}, {Bits: 3, GroupSize: 8}, {Bits: 2, GroupSize: 16, ActOrder: true}, {Bits: 8, BlockSize: 5}} {
		g, err := GPTQ(w, out, in, h, c)
		if err != nil {
			t.Fatal(err)
		}
		r, err := RoundToNearest(w, out, in, c)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(g.Levels, r.Levels) || !slices.Equal(g.Scales, r.Scales) || !slices.Equal(g.Weights, r.Weights) {
			t.Errorf("%+v: GPTQ with H = I differs from round-to-nearest", c)
		}
	}
}

func TestRoundToNearestHandCase(t *testing.T) {
	// 2x3 weight, 3 bits (levels -3..3), per channel: row 0 max|w| 0.9 -> s = 0.3:
	// 0.9 -> 3, -0.48 -> round(-1.6) = -2, 0.1 -> round(0.333) = 0.
	// Row 1 max|w| 0.6 -> s = 0.2: -0.6 -> -3, 0.32 -> round(1.6) = 2, 0.05 -> round(0.25) = 0.
	// (Scales are float32: 0.45/float32(0.3) is just below 1.5, so ties are avoided here.)
	w := []float64{0.9, -0.48, 0.1, -0.6, 0.32, 0.05}
	q, err := RoundToNearest(w, 2, 3, GPTQConfig{Bits: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int8{3, -2, 0, -3, 2, 0}; !slices.Equal(q.Levels, want) {
		t.Fatalf("levels %v, want %v", q.Levels, want)
	}
	if want := []float32{0.3, 0.2}; !slices.Equal(q.Scales, want) {
		t.Fatalf("scales %v, want %v", q.Scales, want)
	}
}

func TestGPTQHandCase(t *testing.T) {
	// One output row w = (0.26, 0.14, 0.4), 2 bits (levels -1..1), per channel: s = 0.4.
	// H = [[2, -1, 0], [-1, 2, 0], [0, 0, 1]] undamped, so H^-1 = [[2, 1, 0], [1, 2, 0], [0, 0, 3]]/3.
	// RTN: 0.26/0.4 = 0.65 -> 1, 0.14/0.4 = 0.35 -> 0, 1 -> 1.
	// GPTQ: column 0 -> level 1 (0.4), w0 - q0 = -0.14; OBS update of column 1:
	// w1 -= (w0 - q0) / [H^-1]_00 * [H^-1]_10 = 0.14 + 0.14/(2/3) * (1/3) = 0.21 -> 0.525 -> 1.
	// Column 2 is uncorrelated ([H^-1]_20 = [H^-1]_21 = 0): level 1.
	w := []float64{0.26, 0.14, 0.4}
	h := []float64{2, -1, 0, -1, 2, 0, 0, 0, 1}
	q, err := GPTQ(w, 1, 3, h, GPTQConfig{Bits: 2, Undamped: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int8{1, 1, 1}; !slices.Equal(q.Levels, want) {
		t.Fatalf("GPTQ levels %v, want %v", q.Levels, want)
	}
	if q.Scales[0] != 0.4 {
		t.Fatalf("scale %v, want 0.4", q.Scales[0])
	}
	r, err := RoundToNearest(w, 1, 3, GPTQConfig{Bits: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int8{1, 0, 1}; !slices.Equal(r.Levels, want) {
		t.Fatalf("RTN levels %v, want %v", r.Levels, want)
	}
	// proxy loss: column 0's error^2 / (2 [H_F^-1]_00) = 0.0196 / (4/3) = 0.0147; column 1 after
	// the update: (0.21 - 0.4)^2 / (2 [H_F^-1]_11), H_F = [[2, 0], [0, 1]] -> 0.0361 / 1;
	// column 2: 0 (the scales are float32, hence the tolerance).
	if want := 0.0196/(4.0/3) + 0.0361/1; math.Abs(q.Error-want) > 1e-6 {
		t.Fatalf("proxy loss %v, want %v", q.Error, want)
	}
}

// gptqSlow is GPTQ straight from Algorithm 1 of Frantar et al. as the OBS update, without the
// Cholesky trick or lazy batches: for every column q (in processing order) it inverts the
// dampened Hessian of the remaining columns F explicitly, quantizes w_q and updates
// w_F -= (w_q - quant(w_q)) / [H_F^-1]_qq * (H_F^-1)_{:,q}. It returns the dequantized weights.
func gptqSlow(t *testing.T, w []float64, out, in int, h []float64, c GPTQConfig) []float64 {
	t.Helper()
	damp := c.PercDamp
	if damp == 0 {
		damp = 0.01
	}
	qmax := float64(int(1)<<(c.Bits-1) - 1)
	g := c.GroupSize
	if g == 0 {
		g = in
	}
	w = slices.Clone(w)
	diag := make([]float64, in)
	var mean float64
	for j := range diag {
		diag[j] = h[j*in+j]
		if diag[j] == 0 { // dead input: weight 0, unit diagonal
			diag[j] = 1
			for r := 0; r < out; r++ {
				w[r*in+j] = 0
			}
		}
		mean += diag[j] / float64(in)
	}
	order := make([]int, in)
	for j := range order {
		order[j] = j
	}
	if c.ActOrder {
		sort.SliceStable(order, func(a, b int) bool { return diag[order[a]] > diag[order[b]] })
	}
	hd := func(a, b int) float64 { // dampened H in original indices
		if a == b {
			return diag[a] + damp*mean
		}
		if h[a*in+a] == 0 || h[b*in+b] == 0 {
			return 0
		}
		return h[a*in+b]
	}
	scaleOf := func(v []float64) float64 {
		m := 0.0
		for _, x := range v {
			m = max(m, math.Abs(x))
		}
		s := float32(m / qmax)
		if s < 1.1920929e-07 {
			s = 1.1920929e-07
		}
		return float64(s)
	}
	scale := make([]float64, out*(in/g)) // by row and original group
	static := c.GroupSize == 0 || c.ActOrder
	if static {
		for r := 0; r < out; r++ {
			for k := 0; k < in/g; k++ {
				scale[r*(in/g)+k] = scaleOf(w[r*in+k*g : r*in+k*g+g])
			}
		}
	}
	res := make([]float64, out*in)
	for q := 0; q < in; q++ {
		rest := order[q:]
		m := mat.NewDense(len(rest), len(rest), nil)
		for i, a := range rest {
			for j, b := range rest {
				m.Set(i, j, hd(a, b))
			}
		}
		var inv mat.Dense
		if err := inv.Inverse(m); err != nil {
			t.Fatal(err)
		}
		col := order[q]
		if !static && col%g == 0 {
			for r := 0; r < out; r++ {
				scale[r*(in/g)+col/g] = scaleOf(w[r*in+col : r*in+col+g])
			}
		}
		for r := 0; r < out; r++ {
			s := scale[r*(in/g)+col/g]
			l := math.Max(-qmax, math.Min(qmax, math.Round(w[r*in+col]/s)))
			qv := float64(float32(l) * float32(s))
			res[r*in+col] = qv
			e := (w[r*in+col] - qv) / inv.At(0, 0)
			for i, b := range rest {
				w[r*in+b] -= e * inv.At(i, 0)
			}
		}
	}
	return res
}

func TestGPTQMatchesAlgorithm1(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n, out, in = 256, 6, 24
	x := correlatedInputs(rng, n, in)
	for r := 0; r < n; r++ {
		x[r*in+5] = 0 // a dead input
	}
	h := hessianOf(t, x, in)
	w := randomWeight(rng, out, in)
	for _, c := range []GPTQConfig{
		{Bits: 4}, {Bits: 4, BlockSize: 5}, {Bits: 3, GroupSize: 8, BlockSize: 8},
		{Bits: 3, GroupSize: 4, BlockSize: 10}, {Bits: 4, ActOrder: true, BlockSize: 7},
		{Bits: 2, GroupSize: 6, ActOrder: true, BlockSize: 12}, {Bits: 8, PercDamp: 0.1},
	} {
		fast, err := GPTQ(w, out, in, h, c)
		if err != nil {
			t.Fatal(err)
		}
		slow := gptqSlow(t, w, out, in, h, c)
		var d float64
		for i := range slow {
			d = max(d, math.Abs(slow[i]-fast.Weights[i]))
		}
		if d > 1e-6 {
			t.Errorf("%+v: fast GPTQ differs from Algorithm 1 by %g", c, d)
		}
		for r := 0; r < out; r++ {
			if fast.Weights[r*in+5] != 0 {
				t.Errorf("%+v: dead input weight (%d, 5) = %v, want 0", c, r, fast.Weights[r*in+5])
			}
		}
	}
}

func TestGPTQActOrderPermutation(t *testing.T) {
	// Act-order must only change the processing order: permuting the inputs (columns of W, rows
	// and columns of H) before GPTQ gives the permuted result, when the groups are per channel.
	rng := rand.New(rand.NewPCG(9, 10))
	const n, out, in = 200, 5, 16
	x := correlatedInputs(rng, n, in)
	h := hessianOf(t, x, in)
	w := randomWeight(rng, out, in)
	perm := rng.Perm(in)
	wp, hp := make([]float64, len(w)), make([]float64, len(h))
	for r := 0; r < out; r++ {
		for i, j := range perm {
			wp[r*in+i] = w[r*in+j]
		}
	}
	for i, a := range perm {
		for j, b := range perm {
			hp[i*in+j] = h[a*in+b]
		}
	}
	c := GPTQConfig{Bits: 3, ActOrder: true, BlockSize: 4}
	q, err := GPTQ(w, out, in, h, c)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := GPTQ(wp, out, in, hp, c)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < out; r++ {
		for i, j := range perm {
			if d := math.Abs(qp.Weights[r*in+i] - q.Weights[r*in+j]); d > 1e-9 {
				t.Fatalf("act-order result depends on the input order: (%d,%d) differs by %g", r, j, d)
			}
		}
	}
	// and act-order changes the result on this Hessian (the order matters)
	q2, err := GPTQ(w, out, in, h, GPTQConfig{Bits: 3, BlockSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(q2.Levels, q.Levels) {
		t.Error("act-order gave the same levels as the natural order")
	}
}

func TestGPTQErrors(t *testing.T) {
	w := []float64{0.1, 0.2, 0.3, 0.4}
	eye := []float64{1, 0, 0, 1}
	nan := []float64{1, math.NaN(), math.NaN(), 1}
	for _, tc := range []struct {
		name string
		w, h []float64
		c    GPTQConfig
	}{
		{"NaN in H", w, nan, GPTQConfig{Bits: 4}},
		{"Inf in H", w, []float64{math.Inf(1), 0, 0, 1}, GPTQConfig{Bits: 4}},
		{"indefinite H", w, []float64{1, 3, 3, 1}, GPTQConfig{Bits: 4}},
		{"negative diagonal", w, []float64{-1, 0, 0, 1}, GPTQConfig{Bits: 4}},
		{"asymmetric H", w, []float64{1, 0.5, 0, 1}, GPTQConfig{Bits: 4}},
		{"H size", w, []float64{1}, GPTQConfig{Bits: 4}},
		{"1 bit", w, eye, GPTQConfig{Bits: 1}},
		{"9 bits", w, eye, GPTQConfig{Bits: 9}},
		{"group 3 of 2", w, eye, GPTQConfig{Bits: 4, GroupSize: 3}},
		{"negative group", w, eye, GPTQConfig{Bits: 4, GroupSize: -2}},
		{"negative damp", w, eye, GPTQConfig{Bits: 4, PercDamp: -0.1}},
		{"NaN weight", []float64{0.1, math.NaN(), 0.3, 0.4}, eye, GPTQConfig{Bits: 4}},
		{"weight size", []float64{0.1}, eye, GPTQConfig{Bits: 4}},
	} {
		if _, err := GPTQ(tc.w, 2, 2, tc.h, tc.c); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := GPTQ(w, 2, 2, nan, GPTQConfig{Bits: 4}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN in H: %v, want ErrNonFinite", err)
	}
	// a singular H (rank 1) factors with the default dampening, and is an error without it
	if _, err := GPTQ(w, 2, 2, []float64{1, 1, 1, 1}, GPTQConfig{Bits: 4}); err != nil {
		t.Errorf("rank-1 H with the default dampening: %v", err)
	}
	if _, err := GPTQ(w, 2, 2, []float64{1, 1, 1, 1}, GPTQConfig{Bits: 4, Undamped: true}); err == nil {
		t.Error("singular H without dampening: no error")
	}
	if _, err := RoundToNearest(w, 2, 2, GPTQConfig{Bits: 0}); err == nil {
		t.Error("RoundToNearest with 0 bits: no error")
	}
}
