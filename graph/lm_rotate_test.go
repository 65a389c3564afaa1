package graph

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// randomOrthogonal returns a random n x n orthogonal matrix (Gram-Schmidt on Gaussian rows).
func randomOrthogonal(rng *rand.Rand, n int) FixedMatrix {
	m := make([]float64, n*n)
	for i := 0; i < n; i++ {
		row := m[i*n : (i+1)*n]
		for j := range row {
			row[j] = rng.NormFloat64()
		}
		for k := 0; k < i; k++ {
			prev := m[k*n : (k+1)*n]
			var d float64
			for j := range row {
				d += row[j] * prev[j]
			}
			for j := range row {
				row[j] -= d * prev[j]
			}
		}
		var s float64
		for _, v := range row {
			s += v * v
		}
		for j := range row {
			row[j] /= math.Sqrt(s)
		}
	}
	return FixedMatrix{N: n, M: m}
}

// randomRotations returns a random R1, random R2 per block and the online Hadamard.
func randomRotations(rng *rand.Rand, c LMConfig) LMRotations {
	r := LMRotations{Residual: randomOrthogonal(rng, c.Dim), Hadamard: true}
	for i := 0; i < c.Layers; i++ {
		r.Head = append(r.Head, randomOrthogonal(rng, c.Dim/c.Heads))
	}
	return r
}

// logitsAny runs the LM once and returns the logits as float64 (float32 or float64 models).
func logitsAny(t *testing.T, m *LM, o LMOptions, ids []int) ([]float64, *LMNet) {
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
	switch d := n.Logits.Value().Data().(type) {
	case []float64:
		return slices.Clone(d), n
	case []float32:
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x)
		}
		return v, n
	}
	t.Fatal("logits are not float")
	return nil, nil
}

func maxRel(a, b []float64) float64 {
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
		m = max(m, math.Abs(a[i]))
	}
	return d / m
}

// TestLMFoldRotations: the model built with rotations (random orthogonal R1 and R2, online
// Hadamard) and the model with the rotations folded into its weights both compute the logits of
// the plain model (norm gains random, so folding them is exercised); after folding no rotation
// node remains but one online Walsh-Hadamard transform per block.
func TestLMFoldRotations(t *testing.T) {
	for _, tc := range []struct {
		dt    tensor.Dtype
		c     LMConfig
		batch int
		tol   float64
	}{
		{tensor.Float64, tinyLMConfig(), 2, 1e-10},
		{tensor.Float32, LMConfig{Vocab: 256, Dim: 64, Layers: 2, Heads: 4, Hidden: 128, Ctx: 16}, 1, 1e-5},
	} {
		m, err := NewLM("lm", tc.c, tc.dt, 5)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		for _, p := range m.Params() {
			if p.Role == RoleGain {
				setParamFloat64s(p, randomVec(rng, p.Value.Shape().TotalSize(), 0.5, 1.5))
			}
		}
		ids := randomTokens(rng, tc.batch*tc.c.Ctx, tc.c.Vocab)
		plain, _ := logitsAny(t, m, LMOptions{Batch: tc.batch}, ids)
		r := randomRotations(rng, m.Config)
		inGraph, _ := logitsAny(t, m, LMOptions{Batch: tc.batch, Rotations: &r}, ids)
		if d := maxRel(plain, inGraph); d > tc.tol {
			t.Fatalf("%v: rotations in the graph changed the logits by %g relative", tc.dt, d)
		}
		if err := m.FoldRotations(r); err != nil {
			t.Fatal(err)
		}
		if !m.Config.OnlineHadamard {
			t.Fatal("FoldRotations did not set OnlineHadamard")
		}
		folded, n := logitsAny(t, m, LMOptions{Batch: tc.batch}, ids)
		if d := maxRel(plain, folded); d > tc.tol {
			t.Fatalf("%v: folding the rotations changed the logits by %g relative", tc.dt, d)
		}
		for _, p := range m.Params() {
			if p.Role == RoleGain && slices.ContainsFunc(paramFloat64s(p), func(g float64) bool { return g != 1 }) {
				t.Fatalf("%s was not folded to 1", p.Name)
			}
		}
		hadamards := 0
		for _, node := range n.G.AllNodes() {
			if node.Op() == nil {
				if strings.Contains(node.Name(), "rotation") {
					t.Fatalf("folded graph holds rotation input %s", node.Name())
				}
				continue
			}
			if strings.HasPrefix(node.Op().String(), "Hadamard") {
				hadamards++
			}
		}
		if hadamards != m.Config.Layers {
			t.Fatalf("folded graph has %d Hadamard nodes, want one per block (%d)", hadamards, m.Config.Layers)
		}
		// the architecture record carries the online Hadamard
		if a := m.Arch(); !a.LM.OnlineHadamard {
			t.Fatal("Arch does not record OnlineHadamard")
		}
	}
}

// TestLMRotationsHeadOnly folds only R2 (no residual rotation: gains stay) and checks the logits.
func TestLMRotationsHeadOnly(t *testing.T) {
	m, err := NewLM("lm", tinyLMConfig(), tensor.Float64, 8)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	ids := randomTokens(rng, 8, 7)
	plain, _ := logitsAny(t, m, LMOptions{Batch: 2}, ids)
	r := LMRotations{Head: []Matrix{nil, randomOrthogonal(rng, 4)}}
	inGraph, _ := logitsAny(t, m, LMOptions{Batch: 2, Rotations: &r}, ids)
	wv := paramFloat64s(m.Param("blk1.attn.wv.weight"))
	if err := m.FoldRotations(r); err != nil {
		t.Fatal(err)
	}
	folded, _ := logitsAny(t, m, LMOptions{Batch: 2}, ids)
	if d := max(maxRel(plain, inGraph), maxRel(plain, folded)); d > 1e-10 {
		t.Fatalf("head rotation changed the logits by %g relative", d)
	}
	if slices.Equal(wv, paramFloat64s(m.Param("blk1.attn.wv.weight"))) || m.Config.OnlineHadamard {
		t.Fatal("head rotation not folded into wv, or OnlineHadamard set without Hadamard")
	}
}

func TestLMRotationsErrors(t *testing.T) {
	m, err := NewLM("lm", tinyLMConfig(), tensor.Float64, 8)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	bad := []LMRotations{
		{Residual: randomOrthogonal(rng, 4)},
		{Head: []Matrix{randomOrthogonal(rng, 8)}},
		{Head: []Matrix{nil, nil, nil}},
		{Residual: FixedMatrix{N: 8, M: make([]float64, 3)}},
	}
	for i, r := range bad {
		before := paramFloat64s(m.Param("tok_emb.weight"))
		if err := m.FoldRotations(r); err == nil {
			t.Fatalf("case %d: no error", i)
		}
		if !slices.Equal(before, paramFloat64s(m.Param("tok_emb.weight"))) {
			t.Fatalf("case %d: failed fold changed the embedding", i)
		}
		if _, err := m.Build(LMOptions{Batch: 1, Rotations: &r}); err == nil {
			t.Fatalf("case %d: Build: no error", i)
		}
	}
	if err := m.FoldRotations(LMRotations{Hadamard: true}); err != nil {
		t.Fatal(err)
	}
	if err := m.FoldRotations(LMRotations{Hadamard: true}); err == nil {
		t.Fatal("second Hadamard fold: no error")
	}
	if _, err := m.ChannelFold("blk0.mlp.w2.in"); err == nil {
		t.Fatal("ChannelFold of a site rotated online: no error")
	}
	c := tinyLMConfig()
	c.Hidden, c.OnlineHadamard = 12, true
	if _, err := NewLM("lm", c, tensor.Float64, 1); err == nil {
		t.Fatal("OnlineHadamard with Hidden 12: no error")
	}
	if _, err := m.Build(LMOptions{Batch: 1, Rotations: &LMRotations{}, Rotate: testRotation}); err == nil {
		t.Fatal("Rotations with Rotate: no error")
	}
}

func randomVec(rng *rand.Rand, n int, lo, hi float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float64()
	}
	return v
}
