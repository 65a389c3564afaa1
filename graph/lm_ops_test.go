package graph

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lmInput is a float64 input node with random normal values.
func lmInput(g *G.ExprGraph, rng *rand.Rand, name string, shape ...int) *G.Node {
	v := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(shape...))
	fill(v, rng)
	return G.NewTensor(g, tensor.Float64, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(v))
}

func f64(n *G.Node) []float64 { return n.Value().Data().([]float64) }

// gradCheckNodes checks d/dw of loss = sum(out .* r) for every w in wrt against central
// differences at every coordinate (sizes are small).
func gradCheckNodes(t *testing.T, name string, g *G.ExprGraph, out *G.Node, wrt ...*G.Node) {
	t.Helper()
	if err := gradcheck.Graph(g, out, wrt, gradcheck.Options{}); err != nil {
		t.Errorf("%s: %v", name, err)
	}
}

func idsNode(g *G.ExprGraph, ids []int) *G.Node {
	v := make([]float64, len(ids))
	for i, id := range ids {
		v[i] = float64(id)
	}
	return G.NewVector(g, tensor.Float64, G.WithShape(len(v)), G.WithName("ids"), G.WithValue(tensor.New(tensor.WithBacking(v))))
}

func TestEmbeddingForwardAndGrad(t *testing.T) {
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(1, 2))
	table := lmInput(g, rng, "table", 5, 3)
	ids := []int{4, 0, 4, 2, 4, 1}
	out, err := Embedding(table, idsNode(g, ids))
	if err != nil {
		t.Fatal(err)
	}
	gradCheckNodes(t, "embedding", g, out, table)
	tv := f64(table)
	for i, id := range ids {
		for j := 0; j < 3; j++ {
			if got, want := f64(out)[i*3+j], tv[id*3+j]; got != want {
				t.Fatalf("row %d col %d: %v want %v", i, j, got, want)
			}
		}
	}
}

func TestEmbeddingBadIDs(t *testing.T) {
	for _, bad := range []float64{5, -1, 1.5} {
		g := G.NewGraph()
		table := lmInput(g, rand.New(rand.NewPCG(1, 2)), "table", 5, 3)
		ids := G.NewVector(g, tensor.Float64, G.WithShape(2), G.WithName("ids"), G.WithValue(tensor.New(tensor.WithBacking([]float64{0, bad}))))
		if _, err := Embedding(table, ids); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		if err := vm.RunAll(); err == nil {
			t.Errorf("id %v: no error", bad)
		}
		vm.Close()
	}
}

// TestSplitHeadsRoPEReference compares SplitHeads with a complex-number formulation of RoPE:
// pair p of head h at position t is multiplied by exp(i * t * base^(-2p/hd)).
func TestSplitHeadsRoPEReference(t *testing.T) {
	const B, T, H, hd, base = 2, 5, 3, 4, 100.0
	g := G.NewGraph()
	x := lmInput(g, rand.New(rand.NewPCG(5, 6)), "x", B*T, H*hd)
	y, err := SplitHeads(x, B, T, H, base)
	if err != nil {
		t.Fatal(err)
	}
	back, err := MergeHeads(G.Must(SplitHeads(x, B, T, H, 0)), B, T, H)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	xv, yv := f64(x), f64(y)
	for b := 0; b < B; b++ {
		for tt := 0; tt < T; tt++ {
			for h := 0; h < H; h++ {
				for p := 0; p < hd/2; p++ {
					in := (b*T+tt)*H*hd + h*hd + 2*p
					z := complex(xv[in], xv[in+1]) * cmplx.Exp(complex(0, float64(tt)*math.Pow(base, -2*float64(p)/hd)))
					o := ((b*H+h)*T+tt)*hd + 2*p
					if math.Abs(real(z)-yv[o]) > 1e-12 || math.Abs(imag(z)-yv[o+1]) > 1e-12 {
						t.Fatalf("b%d t%d h%d p%d: got (%v,%v) want %v", b, tt, h, p, yv[o], yv[o+1], z)
					}
				}
			}
		}
	}
	for i, v := range f64(back) {
		if v != xv[i] {
			t.Fatalf("merge(split(x))[%d] = %v, want %v", i, v, xv[i])
		}
	}
}

func TestSplitMergeHeadsGrad(t *testing.T) {
	const B, T, H, hd = 2, 3, 2, 4
	for _, base := range []float64{0, 10} {
		g := G.NewGraph()
		rng := rand.New(rand.NewPCG(7, 7))
		x := lmInput(g, rng, "x", B*T, H*hd)
		y := G.Must(SplitHeads(x, B, T, H, base))
		gradCheckNodes(t, "split", g, y, x)
		g2 := G.NewGraph()
		x2 := lmInput(g2, rng, "x2", B*H, T, hd)
		gradCheckNodes(t, "merge", g2, G.Must(MergeHeads(x2, B, T, H)), x2)
	}
}

func TestCausalSoftmax(t *testing.T) {
	const M, T, scale = 2, 4, 0.7
	g := G.NewGraph()
	s := lmInput(g, rand.New(rand.NewPCG(9, 9)), "s", M, T, T)
	y, err := CausalSoftmax(s, scale)
	if err != nil {
		t.Fatal(err)
	}
	gradCheckNodes(t, "causal-softmax", g, y, s)
	sv, yv := f64(s), f64(y)
	for r := 0; r < M*T; r++ {
		tt := r % T
		var den float64
		for j := 0; j <= tt; j++ {
			den += math.Exp(scale * sv[r*T+j])
		}
		for j := 0; j < T; j++ {
			want := 0.0
			if j <= tt {
				want = math.Exp(scale*sv[r*T+j]) / den
			}
			if math.Abs(yv[r*T+j]-want) > 1e-12 {
				t.Fatalf("row %d col %d: %v want %v", r, j, yv[r*T+j], want)
			}
		}
	}
}

func TestRMSNorm(t *testing.T) {
	const N, D, eps = 3, 5, 1e-5
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(11, 12))
	x := lmInput(g, rng, "x", N, D)
	gain := lmInput(g, rng, "gain", D)
	y, err := RMSNorm(x, gain, eps)
	if err != nil {
		t.Fatal(err)
	}
	gradCheckNodes(t, "rmsnorm", g, y, x, gain)
	xv, gv, yv := f64(x), f64(gain), f64(y)
	for i := 0; i < N; i++ {
		var ms float64
		for j := 0; j < D; j++ {
			ms += xv[i*D+j] * xv[i*D+j] / D
		}
		for j := 0; j < D; j++ {
			if want := xv[i*D+j] / math.Sqrt(ms+eps) * gv[j]; math.Abs(yv[i*D+j]-want) > 1e-12 {
				t.Fatalf("(%d,%d): %v want %v", i, j, yv[i*D+j], want)
			}
		}
	}
}

func TestSwiGLUGrad(t *testing.T) {
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(13, 14))
	x := lmInput(g, rng, "x", 3, 4)
	w1, w3, w2 := lmInput(g, rng, "w1", 6, 4), lmInput(g, rng, "w3", 6, 4), lmInput(g, rng, "w2", 4, 6)
	h := G.Must(SwiGLU(G.Must(LinearNoBias(x, w1)), G.Must(LinearNoBias(x, w3))))
	out := G.Must(LinearNoBias(h, w2))
	gradCheckNodes(t, "swiglu", g, out, x, w1, w3, w2)
	// forward against the formula for one element
	xv, w1v, w3v, hv := f64(x), f64(w1), f64(w3), f64(h)
	var a, b float64
	for k := 0; k < 4; k++ {
		a += xv[4+k] * w1v[2*4+k]
		b += xv[4+k] * w3v[2*4+k]
	}
	if want := a / (1 + math.Exp(-a)) * b; math.Abs(hv[1*6+2]-want) > 1e-12 {
		t.Fatalf("h[1,2] = %v, want %v", hv[1*6+2], want)
	}
}

// naiveAttention is a loop reference of causal multi-head attention with RoPE.
func naiveAttention(q, k, v []float64, B, T, H, hd int, base float64) []float64 {
	D := H * hd
	rot := func(x []float64, t int) []float64 {
		y := append([]float64(nil), x...)
		if base == 0 {
			return y
		}
		for p := 0; p < hd/2; p++ {
			z := complex(x[2*p], x[2*p+1]) * cmplx.Exp(complex(0, float64(t)*math.Pow(base, -2*float64(p)/float64(hd))))
			y[2*p], y[2*p+1] = real(z), imag(z)
		}
		return y
	}
	out := make([]float64, B*T*D)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < T; i++ {
				qi := rot(q[(b*T+i)*D+h*hd:(b*T+i)*D+(h+1)*hd], i)
				w := make([]float64, i+1)
				var den float64
				for j := 0; j <= i; j++ {
					kj := rot(k[(b*T+j)*D+h*hd:(b*T+j)*D+(h+1)*hd], j)
					var s float64
					for c := range kj {
						s += qi[c] * kj[c]
					}
					w[j] = math.Exp(s / math.Sqrt(float64(hd)))
					den += w[j]
				}
				for j := 0; j <= i; j++ {
					for c := 0; c < hd; c++ {
						out[(b*T+i)*D+h*hd+c] += w[j] / den * v[(b*T+j)*D+h*hd+c]
					}
				}
			}
		}
	}
	return out
}

func TestCausalAttention(t *testing.T) {
	const B, T, H, hd = 2, 4, 2, 4
	for _, base := range []float64{0, 10000} {
		g := G.NewGraph()
		rng := rand.New(rand.NewPCG(15, 16))
		q, k, v := lmInput(g, rng, "q", B*T, H*hd), lmInput(g, rng, "k", B*T, H*hd), lmInput(g, rng, "v", B*T, H*hd)
		o, err := CausalAttention(q, k, v, B, T, H, base)
		if err != nil {
			t.Fatal(err)
		}
		gradCheckNodes(t, "attention", g, o, q, k, v)
		want := naiveAttention(f64(q), f64(k), f64(v), B, T, H, hd, base)
		for i, got := range f64(o) {
			if math.Abs(got-want[i]) > 1e-10 {
				t.Fatalf("base %v: out[%d] = %v, want %v", base, i, got, want[i])
			}
		}
	}
}

// CausalAttentionRounded hands each operand to round once, with its documented shape, and uses
// what round returns: a rounding that negates the values leaves q k^T and the softmax unchanged
// (both operands negated) and negates the output (values negated), checked against the naive
// attention.
func TestCausalAttentionRounded(t *testing.T) {
	const B, T, H, hd = 2, 4, 2, 4
	g := G.NewGraph()
	rng := rand.New(rand.NewPCG(17, 18))
	q, k, v := lmInput(g, rng, "q", B*T, H*hd), lmInput(g, rng, "k", B*T, H*hd), lmInput(g, rng, "v", B*T, H*hd)
	seen := map[string][]int{}
	o, err := CausalAttentionRounded(q, k, v, B, T, H, 10000, func(op string, x *G.Node) (*G.Node, error) {
		seen[op] = x.Shape().Clone()
		if op == AttnProbs {
			return x, nil
		}
		return G.Neg(x)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{AttnQuery: {B * H, T, hd}, AttnKey: {B * H, T, hd}, AttnValue: {B * H, T, hd}, AttnProbs: {B * H, T, T}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("operands %v, want %v", seen, want)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	ref := naiveAttention(f64(q), f64(k), f64(v), B, T, H, hd, 10000)
	for i, got := range f64(o) {
		if math.Abs(got+ref[i]) > 1e-10 {
			t.Fatalf("out[%d] = %v, want %v", i, got, -ref[i])
		}
	}
}
