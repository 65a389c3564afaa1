package fakequant

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// round32 is an independent reference for addRound32: the exact sum in big.Float, rounded once
// to 24 bits with ties to even.
func round32(p float64, a float32) float32 {
	s := new(big.Float).SetPrec(200).SetFloat64(p)
	s.Add(s, new(big.Float).SetPrec(200).SetFloat64(float64(a)))
	f, _ := s.Float32()
	return f
}

func TestAddRound32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := [][2]float64{
		{0, 0}, {1, 1}, {-3, 3},
		// exact ties after a float64 rounding: 1 + 2^-24 (a float32 midpoint) plus a tiny term
		{1 + math.Ldexp(1, -24), math.Ldexp(1, -60)},
		{1 + math.Ldexp(1, -24), -math.Ldexp(1, -60)},
		{math.Ldexp(1, -60), 1 + math.Ldexp(1, -24)},
	}
	for i := 0; i < 100000; i++ {
		p := math.Ldexp(float64(rng.Int64N(1<<38)-1<<37), rng.IntN(40)-60)
		a := float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(30)-40))
		cases = append(cases, [2]float64{p, float64(a)})
		// a sum landing near a float32 midpoint
		m := float64(a) + math.Ldexp(math.Abs(float64(a)), -24)*float64(rng.IntN(3)-1)
		cases = append(cases, [2]float64{m - float64(a) + math.Ldexp(float64(rng.IntN(5)-2), -70), float64(a)})
	}
	for _, c := range cases {
		p := c[0]
		// the second operand must be a float32 for the first case family; the midpoint cases
		// put the float32 one in the second slot as well, except the crafted ones above.
		var a float32
		if float64(float32(c[1])) == c[1] {
			a = float32(c[1])
		} else {
			p, a = c[1], float32(c[0])
			if float64(a) != c[0] {
				continue
			}
		}
		if got, want := addRound32(p, a), round32(p, a); got != want {
			t.Fatalf("addRound32(%v, %v) = %v, exact rounding %v", p, a, got, want)
		}
	}
}

// ggmlLinearRef is an independent reference of GGMLLinear's forward: exact block (or lane) sums
// and accumulators rounded to float32 after each step, in big.Float.
func ggmlLinearRef(x, w []float32, n, in, out int, lanes bool) []float32 {
	y := make([]float32, n*out)
	exact := func(xs, ws []float32) *big.Float {
		s := new(big.Float).SetPrec(300)
		for j := range xs {
			s.Add(s, new(big.Float).SetPrec(300).Mul(big.NewFloat(float64(xs[j])), big.NewFloat(float64(ws[j]))))
		}
		return s
	}
	r32 := func(v *big.Float) float32 { f, _ := v.Float32(); return f }
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			xr, wr := x[i*in:(i+1)*in], w[o*in:(o+1)*in]
			if !lanes {
				var acc float32
				for b := 0; b < in; b += 32 {
					s := exact(xr[b:b+32], wr[b:b+32])
					acc = r32(s.Add(s, big.NewFloat(float64(acc))))
				}
				y[i*out+o] = acc
				continue
			}
			var acc [8]float32
			for b := 0; b < in; b += 32 {
				for l := range acc {
					s := exact(xr[b+4*l:b+4*l+4], wr[b+4*l:b+4*l+4])
					acc[l] = r32(s.Add(s, big.NewFloat(float64(acc[l]))))
				}
			}
			y[i*out+o] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
		}
	}
	return y
}

// GGMLLinear on fake-quantized inputs equals the big.Float reference of llama.cpp's order bit for
// bit, is within float rounding of the float64 product, and its gradients equal those of
// x W^T computed by Gorgonia's own matmul.
func TestGGMLLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		f          GGMLFormat
		n, in, out int
		lanes      bool
		name       string
	}{
		{GGMLWeightQ4_0, 5, 96, 16, false, "q4_0 repacked"},
		{GGMLWeightQ4_0, 3, 64, 12, true, "q4_0 rows not a multiple of 8"},
		{GGMLWeightQ8_0, 4, 64, 8, true, "q8_0"},
		{GGMLWeightQ4_0, 64, 128, 64, false, "q4_0 split over goroutines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xv := make([]float32, tc.n*tc.in)
			wv := make([]float32, tc.out*tc.in)
			for i := range xv {
				xv[i] = float32(rng.NormFloat64() * 3)
			}
			for i := range wv {
				wv[i] = float32(rng.NormFloat64() * 0.1)
			}
			g := G.NewGraph()
			x := G.NewMatrix(g, tensor.Float32, G.WithShape(tc.n, tc.in), G.WithName("x"), G.WithValue(tensor.New(tensor.WithShape(tc.n, tc.in), tensor.WithBacking(xv))))
			w := G.NewMatrix(g, tensor.Float32, G.WithShape(tc.out, tc.in), G.WithName("w"), G.WithValue(tensor.New(tensor.WithShape(tc.out, tc.in), tensor.WithBacking(wv))))
			xq := G.Must(GGMLFakeQuant(x, GGMLActQ8_0))
			wq := G.Must(GGMLFakeQuant(w, tc.f))
			y, err := GGMLLinear(xq, wq, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			yRef := G.Must(G.Mul(xq, G.Must(G.Transpose(wq))))
			coef := G.NewMatrix(g, tensor.Float32, G.WithShape(tc.n, tc.out), G.WithName("c"), G.WithInit(G.Gaussian(0, 1)))
			cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, coef))))
			costRef := G.Must(G.Sum(G.Must(G.HadamardProd(yRef, coef))))
			gs, err := G.Grad(cost, x, w)
			if err != nil {
				t.Fatal(err)
			}
			gRef, err := G.Grad(costRef, x, w)
			if err != nil {
				t.Fatal(err)
			}
			var gv, gvRef [2]G.Value
			for i := range gs {
				G.Read(gs[i], &gv[i])
				G.Read(gRef[i], &gvRef[i])
			}
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			got := y.Value().Data().([]float32)
			xqv := xq.Value().Data().([]float32)
			wqv := wq.Value().Data().([]float32)
			want := ggmlLinearRef(xqv, wqv, tc.n, tc.in, tc.out, tc.lanes)
			plain := yRef.Value().Data().([]float32)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("y[%d] = %v, llama.cpp order %v", i, got[i], want[i])
				}
				if d := math.Abs(float64(got[i] - plain[i])); d > 1e-5*(1+math.Abs(float64(plain[i]))) {
					t.Fatalf("y[%d] = %v, float matmul %v", i, got[i], plain[i])
				}
			}
			for i := range gv {
				a, b := gv[i].Data().([]float32), gvRef[i].Data().([]float32)
				for j := range a {
					if math.Abs(float64(a[j]-b[j])) > 1e-5*(1+math.Abs(float64(b[j]))) {
						t.Fatalf("gradient %d[%d] = %v, of x W^T %v", i, j, a[j], b[j])
					}
				}
			}
		})
	}
	g := G.NewGraph()
	a := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 48), G.WithName("a"))
	if _, err := GGMLLinear(a, a, GGMLWeightQ4_0); err == nil {
		t.Error("an input width of 48 was accepted")
	}
	b := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 64), G.WithName("b"))
	if _, err := GGMLLinear(b, b, GGMLActQ8_0); err == nil {
		t.Error("an activation format was accepted as weight format")
	}
}
