package qat

import (
	"math"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestQuaRotFold folds QuaRot's rotations into a float32 LM: the logits stay within 1e-5
// relative and the residual activations are no longer those of the plain model (they are rotated).
func TestQuaRotFold(t *testing.T) {
	m := gptqLM(t, tensor.Float32, 3)
	ids, tg := tokenBatches(m, 2, 4)(0)
	before := lmLogits(t, m, graph.LMOptions{}, ids, tg)
	r, err := QuaRotRotations(m.Config, 11)
	if err != nil {
		t.Fatal(err)
	}
	emb := slices.Clone(m.Param("tok_emb.weight").Value.Data().([]float32))
	if err := m.FoldRotations(r); err != nil {
		t.Fatal(err)
	}
	after := lmLogits(t, m, graph.LMOptions{}, ids, tg)
	if d := maxRelDiff(before, after); d > 1e-5 {
		t.Fatalf("folding QuaRot's rotations changed the logits by %g relative", d)
	}
	if slices.Equal(emb, m.Param("tok_emb.weight").Value.Data().([]float32)) {
		t.Fatal("the embedding was not rotated")
	}
	c := m.Config
	c.Hidden = 24
	if _, err := QuaRotRotations(c, 1); err == nil {
		t.Fatal("Hidden 24: no error")
	}
}

// TestCayleyRotationValues: the rotation's node in a graph and its Values agree, start at R0 and
// stay orthogonal after A moves.
func TestCayleyRotationValues(t *testing.T) {
	l, err := NewLearnedRotations(graph.LMConfig{Vocab: 4, Dim: 8, Layers: 1, Heads: 2, Hidden: 8, Ctx: 2}, tensor.Float64, 5, 0.1, true)
	if err != nil {
		t.Fatal(err)
	}
	r := l.Residual
	if d := maxRelDiff(r.R0, r.Values()); d != 0 {
		t.Fatalf("at A = 0 the rotation differs from R0 by %g", d)
	}
	a := r.A.Data().([]float64)
	for i := range a {
		a[i] = math.Sin(float64(i))
	}
	g := G.NewGraph()
	n, err := r.Node(g, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if d := maxRelDiff(r.Values(), n.Value().Data().([]float64)); d > 1e-12 {
		t.Fatalf("Values and the graph node differ by %g", d)
	}
	if e := l.MaxOrthogonalityError(); e > 1e-12 {
		t.Fatalf("orthogonality error %g", e)
	}
	if l.MaxDrift() < 0.01 {
		t.Fatal("the rotation did not move with A")
	}
	if _, err := r.Node(G.NewGraph(), tensor.Float32); err == nil {
		t.Fatal("float32 graph for a float64 rotation: no error")
	}
}

// TestLearnedRotationGradient checks the LM loss's gradient with respect to the Cayley parameters
// of R1 and of R2 (block 1) against central differences over all their elements: the gradient
// flows through the Cayley transform and every rotated weight.
func TestLearnedRotationGradient(t *testing.T) {
	m, err := graph.NewLM("t", graph.LMConfig{Vocab: 7, Dim: 8, Layers: 2, Heads: 2, Hidden: 8, Ctx: 4}, tensor.Float64, 2)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLearnedRotations(m.Config, tensor.Float64, 3, 0.1, true)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range []*CayleyRotation{l.Residual, l.Head[1]} { // start away from A = 0
		for i, a := 0, r.A.Data().([]float64); i < len(a); i++ {
			a[i] = 0.3 * math.Cos(float64(3*i+k))
		}
	}
	n, err := m.Build(graph.LMOptions{Batch: 2, Rotations: l.Rotations()})
	if err != nil {
		t.Fatal(err)
	}
	ids, tg := tokenBatches(m, 2, 9)(0)
	if err := n.SetBatch(ids, tg); err != nil {
		t.Fatal(err)
	}
	wrt := l.Nodes()
	wrt = []*G.Node{wrt[0], wrt[2]}
	if err := gradcheck.Graph(n.G, n.Logits, wrt, gradcheck.Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestLearnedRotationsTrainAndFold trains learned rotations with W4A4 QAT for a few steps, folds
// them and checks that the folded model (no rotation in the graph) gives the loss the trained
// graph gave, in float and fake-quantized.
func TestLearnedRotationsTrainAndFold(t *testing.T) {
	lm := smallLM(t)
	l, err := NewLearnedRotations(lm.Config, tensor.Float32, 1, 0.05, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Prepare(lm, LMRecipe{WBits: 4, ABits: 4, Group: 8, LearnW: true, LearnA: true}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{BatchSize: 2, LR: 1e-3, Seed: 1, Logger: quietLogger(), Steps: 6, QuantInit: InitMinMax}
	data := periodicBatches(2, lm.Config.Ctx)
	x, y := lmBatches(data, 0, 2)
	val := Tokens{IDs: x, Targets: y}
	task := &NextTokenTask{LM: lm, Opts: graph.LMOptions{Rotations: l.Rotations()}, Train: data, CalibIDs: x[:1], CalibTargets: y[:1]}
	tr, err := NewTrainer(task, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Hook = l
	if err := tr.Fit(nil); err != nil {
		t.Fatal(err)
	}
	if l.MaxDrift() == 0 {
		t.Fatal("training did not move the rotations")
	}
	if e := l.MaxOrthogonalityError(); e > 1e-5 {
		t.Fatalf("trained rotations are orthogonal to %g only", e)
	}
	inGraph, err := tr.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	ftask := &NextTokenTask{LM: lm, Opts: graph.LMOptions{Rotations: l.Rotations()}}
	fl, err := NewTrainer(ftask, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	floatIn, err := fl.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	if err := lm.FoldRotations(*l.Rotations()); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	fl.Close()
	task.Opts.Rotations, tr.Hook, ftask.Opts.Rotations = nil, nil, nil
	folded, err := tr.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	floatFolded, err := fl.Evaluate(val)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drift %.3g, float loss %.6f in graph %.6f folded; W4A4 %.6f in graph %.6f folded", l.MaxDrift(), floatIn.Loss, floatFolded.Loss, inGraph.Loss, folded.Loss)
	if d := math.Abs(floatIn.Loss-floatFolded.Loss) / floatIn.Loss; d > 1e-5 {
		t.Fatalf("float loss %v with rotations in the graph, %v folded", floatIn.Loss, floatFolded.Loss)
	}
	if d := math.Abs(inGraph.Loss - folded.Loss); d > 1e-3*inGraph.Loss {
		t.Fatalf("W4A4 loss %v with rotations in the graph, %v folded", inGraph.Loss, folded.Loss)
	}
}
