package fakequant

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ggmlExpf is within 2.5 ulp of math.Exp on its range (vec.h states 1.45358 plus 0.5 ulp for the
// ARM routine it adapts; the AVX-512 form rounds once more, seen here up to 2.14 ulp).
func TestGGMLExpf(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0137 {
		got, want := float64(ggmlExpf(x)), math.Exp(float64(x))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		if math.Abs(got-want) > 2.5*ulp {
			t.Fatalf("ggmlExpf(%v) = %v, exp %v (%.2f ulp)", x, got, want, math.Abs(got-want)/ulp)
		}
	}
	if ggmlExpf(-200) != 0 || !math.IsInf(float64(ggmlExpf(200)), 1) {
		t.Errorf("ggmlExpf out of range: %v, %v", ggmlExpf(-200), ggmlExpf(200))
	}
}

// GGMLRMSNorm and GGMLSwiGLU: values within float32 rounding of the float64 formulas (the float
// reference computed independently here), and the gradient of the float reference.
func TestGGMLRuntimeOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, d = 3, 40 // d not a multiple of 16: SwiGLU's scalar tail runs too
	xv, av, bv, gv := make([]float32, n*d), make([]float32, n*d), make([]float32, n*d), make([]float32, d)
	for i := range xv {
		xv[i], av[i], bv[i] = float32(rng.NormFloat64()), float32(3*rng.NormFloat64()), float32(rng.NormFloat64())
	}
	for i := range gv {
		gv[i] = float32(1 + 0.3*rng.NormFloat64())
	}
	g := G.NewGraph()
	mat := func(name string, v []float32, s ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithName(name), G.WithValue(tensor.New(tensor.WithShape(s...), tensor.WithBacking(v))))
	}
	x, a, b, gain := mat("x", xv, n, d), mat("a", av, n, d), mat("b", bv, n, d), mat("g", gv, d)
	// float references built from Gorgonia primitives
	ms := G.Must(G.Mean(G.Must(G.Square(x)), 1))
	inv := G.Must(G.Inverse(G.Must(G.Sqrt(G.Must(G.Add(ms, G.NewConstant(float32(1e-5))))))))
	inv2 := G.Must(G.Reshape(inv, tensor.Shape{n, 1}))
	gain2 := G.Must(G.Reshape(gain, tensor.Shape{1, d}))
	normRef := G.Must(G.BroadcastHadamardProd(G.Must(G.BroadcastHadamardProd(x, inv2, nil, []byte{1})), gain2, nil, []byte{0}))
	gluRef := G.Must(G.HadamardProd(G.Must(G.HadamardProd(a, G.Must(G.Sigmoid(a)))), b))
	norm, err := GGMLRMSNorm(normRef, x, gain, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	glu, err := GGMLSwiGLU(gluRef, a, b)
	if err != nil {
		t.Fatal(err)
	}
	c := mat("c", make([]float32, n*d), n, d)
	for i := range c.Value().Data().([]float32) {
		c.Value().Data().([]float32)[i] = float32(rng.NormFloat64())
	}
	cost := G.Must(G.Add(G.Must(G.Sum(G.Must(G.HadamardProd(norm, c)))), G.Must(G.Sum(G.Must(G.HadamardProd(glu, c))))))
	costRef := G.Must(G.Add(G.Must(G.Sum(G.Must(G.HadamardProd(normRef, c)))), G.Must(G.Sum(G.Must(G.HadamardProd(gluRef, c))))))
	grads, err := G.Grad(cost, x, a, b, gain)
	if err != nil {
		t.Fatal(err)
	}
	gradsRef, err := G.Grad(costRef, x, a, b, gain)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]G.Value, 8)
	for i := range grads {
		G.Read(grads[i], &vals[i])
		G.Read(gradsRef[i], &vals[4+i])
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	close := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	ny, gy := norm.Value().Data().([]float32), glu.Value().Data().([]float32)
	for r := 0; r < n; r++ {
		var ss float64
		for i := 0; i < d; i++ {
			ss += float64(xv[r*d+i]) * float64(xv[r*d+i])
		}
		s := 1 / math.Sqrt(ss/d+1e-5)
		for i := 0; i < d; i++ {
			j := r*d + i
			close("rmsnorm", float64(ny[j]), float64(xv[j])*s*float64(gv[i]))
			av := float64(av[j])
			close("swiglu", float64(gy[j]), av/(1+math.Exp(-av))*float64(bv[j]))
		}
	}
	for i := 0; i < 4; i++ {
		p, q := vals[i].Data().([]float32), vals[4+i].Data().([]float32)
		for j := range p {
			close("gradient", float64(p[j]), float64(q[j]))
		}
	}
	if _, err := GGMLRMSNorm(normRef, x, b, 1e-5); err == nil {
		t.Error("a gain of the wrong shape was accepted")
	}
	if _, err := GGMLSwiGLU(gluRef, a, gain); err == nil {
		t.Error("inputs of different shapes were accepted")
	}
}
