package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func tinyLMConfig() LMConfig {
	return LMConfig{Vocab: 7, Dim: 8, Layers: 2, Heads: 2, Hidden: 8, Ctx: 4}
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = rng.IntN(vocab)
	}
	return v
}

func runVM(t *testing.T, vm G.VM) {
	t.Helper()
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
}

// TestLMGradientsNumerical checks d(cross-entropy)/d(param) of a whole 2-block LM against
// central differences (float64) at every coordinate of every parameter.
func TestLMGradientsNumerical(t *testing.T) {
	m, err := NewLM("lm", tinyLMConfig(), tensor.Float64, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Build(LMOptions{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	if err := n.SetBatch(randomTokens(rng, 8, 7), randomTokens(rng, 8, 7)); err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(n.Loss, n.ParamNodes()...)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	runVM(t, vm)
	loss := func() float64 { runVM(t, vm); return n.Loss.Value().Data().(float64) }
	for i, p := range m.Params() {
		g := slices.Clone(grads[i].Value().Data().([]float64))
		num := gradcheck.Numerical(p.Value.Data().([]float64), gradcheck.DefaultEps, loss)
		if err := gradcheck.Compare(p.Name, g, num, gradcheck.Default); err != nil {
			t.Error(err)
		}
	}
}

// logitsOf runs the LM once on fixed tokens and returns a copy of the logits.
func logitsOf(t *testing.T, m *LM, o LMOptions, ids []int) []float64 {
	t.Helper()
	n, err := m.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetBatch(ids, ids); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	runVM(t, vm)
	return slices.Clone(n.Logits.Value().Data().([]float64))
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func TestLMRotationPreservesFunction(t *testing.T) {
	m, err := NewLM("lm", tinyLMConfig(), tensor.Float64, 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := randomTokens(rand.New(rand.NewPCG(2, 2)), 8, 7)
	plain := logitsOf(t, m, LMOptions{Batch: 2}, ids)
	rot := logitsOf(t, m, LMOptions{Batch: 2, Rotate: testRotation, RotateSeed: 9}, ids)
	if d := maxDiff(plain, rot); d > 1e-10 {
		t.Fatalf("rotated model differs from the plain one by %g", d)
	}
	if d := maxDiff(plain, logitsOf(t, m, LMOptions{Batch: 2, Rotate: testRotation, RotateSeed: 10}, ids)); d > 1e-10 {
		t.Fatalf("rotated model (seed 10) differs from the plain one by %g", d)
	}
}

// testRotation multiplies by a random orthogonal matrix (Gram-Schmidt of a seeded Gaussian).
func testRotation(x *G.Node, seed uint64) (*G.Node, error) {
	n := x.Shape()[x.Dims()-1]
	rng := rand.New(rand.NewPCG(seed, 1))
	q := make([]float64, n*n) // rows are orthonormal; R = q^T
	for i := 0; i < n; i++ {
		row := q[i*n : (i+1)*n]
		for j := range row {
			row[j] = rng.NormFloat64()
		}
		for k := 0; k < i; k++ {
			prev, d := q[k*n:(k+1)*n], 0.0
			for j := range row {
				d += row[j] * prev[j]
			}
			for j := range row {
				row[j] -= d * prev[j]
			}
		}
		nrm := 0.0
		for _, v := range row {
			nrm += v * v
		}
		for j := range row {
			row[j] /= math.Sqrt(nrm)
		}
	}
	var r *G.Node
	if x.Dtype() == tensor.Float32 {
		q32 := make([]float32, len(q))
		for i, v := range q {
			q32[i] = float32(v)
		}
		r = G.NewConstant(tensor.New(tensor.WithShape(n, n), tensor.WithBacking(q32)))
	} else {
		r = G.NewConstant(tensor.New(tensor.WithShape(n, n), tensor.WithBacking(q)))
	}
	return G.Mul(x, r)
}

type recordQuant struct {
	sites []Site
}

func (r *recordQuant) Quantize(s Site, x *G.Node) (*G.Node, error) {
	r.sites = append(r.sites, s)
	want := s.Shape
	if s.Kind == SiteActivation {
		want = []int{x.Shape()[0], s.Shape[0]}
	}
	if !slices.Equal([]int(x.Shape()), want) {
		return nil, fmt.Errorf("site %s: node shape %v, site shape %v", s.Name, x.Shape(), s.Shape)
	}
	return x, nil
}

func TestLMQuantizerSites(t *testing.T) {
	m, err := NewLM("lm", tinyLMConfig(), tensor.Float32, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, rot := range []RotateFunc{nil, testRotation} {
		q := &recordQuant{}
		n, err := m.Build(LMOptions{Batch: 2, Quant: q, Rotate: rot})
		if err != nil {
			t.Fatal(err)
		}
		// graph order: activation site, then the weights reading it
		var names []string
		for _, s := range q.sites {
			names = append(names, s.Name)
		}
		want := []string{
			"blk0.attn.in", "blk0.attn.wq.weight", "blk0.attn.wk.weight", "blk0.attn.wv.weight",
			"blk0.attn.wo.in", "blk0.attn.wo.weight", "blk0.mlp.in", "blk0.mlp.w1.weight", "blk0.mlp.w3.weight",
			"blk0.mlp.w2.in", "blk0.mlp.w2.weight",
			"blk1.attn.in", "blk1.attn.wq.weight", "blk1.attn.wk.weight", "blk1.attn.wv.weight",
			"blk1.attn.wo.in", "blk1.attn.wo.weight", "blk1.mlp.in", "blk1.mlp.w1.weight", "blk1.mlp.w3.weight",
			"blk1.mlp.w2.in", "blk1.mlp.w2.weight", "head.in", "head.weight"}
		if !slices.Equal(names, want) {
			t.Fatalf("sites %v\nwant %v", names, want)
		}
		var fromSpec []string
		for _, s := range m.Sites() {
			fromSpec = append(fromSpec, s.Name)
		}
		if !slices.Equal(fromSpec, want) || len(n.Sites) != len(want) {
			t.Fatalf("Sites() %v, net sites %d", fromSpec, len(n.Sites))
		}
	}
}

func TestLMCheckpointRoundTrip(t *testing.T) {
	a, _ := NewLM("lm", tinyLMConfig(), tensor.Float32, 5)
	b, _ := NewLM("lm", tinyLMConfig(), tensor.Float32, 6)
	var c Checkpoint
	a.SaveState(&c)
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCheckpoint(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.LoadState(d); err != nil {
		t.Fatal(err)
	}
	for _, p := range a.Params() {
		if !slices.Equal(p.Value.Data().([]float32), b.Param(p.Name).Value.Data().([]float32)) {
			t.Fatalf("%s differs after the round trip", p.Name)
		}
	}
	small, _ := NewLM("lm", LMConfig{Vocab: 7, Dim: 4, Layers: 2, Heads: 2, Ctx: 4}, tensor.Float32, 6)
	if err := small.LoadState(d); err == nil {
		t.Fatal("loading into a smaller model: no error")
	}
}

func TestLMErrors(t *testing.T) {
	bad := []LMConfig{
		{Vocab: 0, Dim: 8, Layers: 1, Heads: 2, Ctx: 4},
		{Vocab: 7, Dim: 8, Layers: 1, Heads: 3, Ctx: 4},
		{Vocab: 7, Dim: 6, Layers: 1, Heads: 2, Ctx: 4}, // odd head dim
		{Vocab: 7, Dim: 8, Layers: 1, Heads: 2, Ctx: 0},
	}
	for _, c := range bad {
		if _, err := NewLM("lm", c, tensor.Float32, 1); err == nil {
			t.Errorf("config %+v: no error", c)
		}
	}
	m, _ := NewLM("lm", tinyLMConfig(), tensor.Float32, 1)
	if _, err := m.Build(LMOptions{}); err == nil {
		t.Error("batch 0: no error")
	}
	n, err := m.Build(LMOptions{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetBatch([]int{0, 1, 2}, []int{1, 2, 3}); err == nil {
		t.Error("short batch: no error")
	}
	if err := n.SetBatch([]int{0, 1, 2, 7}, []int{1, 2, 3, 4}); err == nil {
		t.Error("id 7 with vocab 7: no error")
	}
}

func ExampleNewLM() {
	m, err := NewLM("tiny", LMConfig{Vocab: 256, Dim: 64, Layers: 2, Heads: 4, Hidden: 128, Ctx: 64}, tensor.Float32, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.NumParams(), "parameters,", len(m.Sites()), "quantizer sites")
	fmt.Println(m.Sites()[0].Name, m.Sites()[1].Name)
	// Output:
	// 115008 parameters, 24 quantizer sites
	// blk0.attn.in blk0.attn.wq.weight
}

func ExampleLM_Build() {
	m, err := NewLM("tiny", LMConfig{Vocab: 16, Dim: 8, Layers: 1, Heads: 2, Ctx: 4}, tensor.Float64, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := m.Build(LMOptions{Batch: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	// two sequences of 4 tokens and their next tokens
	if err := n.SetBatch([]int{1, 2, 3, 4, 5, 6, 7, 8}, []int{2, 3, 4, 5, 6, 7, 8, 9}); err != nil {
		fmt.Println(err)
		return
	}
	grads, err := G.Grad(n.Loss, n.ParamNodes()...) // one gradient per LM parameter
	if err != nil {
		fmt.Println(err)
		return
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("logits", n.Logits.Shape(), "gradients", len(grads))
	fmt.Printf("loss %.1f nats (uniform: %.1f)\n", n.Loss.Value().Data().(float64), math.Log(16))
	// Output:
	// logits (8, 16) gradients 12
	// loss 3.6 nats (uniform: 2.8)
}
