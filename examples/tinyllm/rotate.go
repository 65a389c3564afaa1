package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TODO(llmmethods): the rotations (Hadamard, learned Cayley, folding) move to package qat; this
// file then shrinks to calls of those functions.

// hadamard is the rotation the example uses: fakequant's randomised Hadamard transform.
func hadamard(x *G.Node, seed uint64) (*G.Node, error) {
	r, err := fakequant.Hadamard(x, seed)
	if err != nil {
		return nil, err
	}
	return r.Out, nil
}

// rotateSeed selects the rotations: site s uses seed rotateSeed ^ fnv64a(s) (graph.LMOptions).
const rotateSeed = 0x51ab

// learnedRotations is a graph.RotateFunc source with one learnable orthogonal matrix per
// activation site (SpinQuant, Liu et al. 2024, trained here jointly with QAT): the site's input
// and the weights that read it are multiplied by the same R, initialised to the site's randomised
// Hadamard matrix (the "hadamard" rotation) and updated on the orthogonal group with CayleySGD.
type learnedRotations struct {
	rs     map[uint64]*fakequant.Rotation
	order  []uint64
	start  map[uint64][]float64 // initial matrices
	spinLR float64              // peak Cayley SGD learning rate
}

var _ qat.StepHook = (*learnedRotations)(nil)

func newLearnedRotations(spinLR float64) *learnedRotations {
	return &learnedRotations{rs: map[uint64]*fakequant.Rotation{}, start: map[uint64][]float64{}, spinLR: spinLR}
}

// Nodes implements qat.StepHook: the rotation matrices, differentiated with the parameters.
func (l *learnedRotations) Nodes() G.Nodes { return l.nodes() }

// Step implements qat.StepHook: one Cayley SGD step at spinLR times the schedule's factor.
func (l *learnedRotations) Step(lrFactor float64) error { return l.step(l.spinLR * lrFactor) }

// rotate implements graph.RotateFunc: the first call with a seed creates the site's rotation in
// x's graph, later calls (the site's weights) reuse it.
func (l *learnedRotations) rotate(x *G.Node, seed uint64) (*G.Node, error) {
	r, ok := l.rs[seed]
	if !ok {
		n := x.Shape()[x.Dims()-1]
		var err error
		if r, err = fakequant.NewRotation(x.Graph(), x.Dtype(), n, fmt.Sprintf("rotation.%x", seed), seed); err != nil {
			return nil, err
		}
		l.rs[seed] = r
		l.order = append(l.order, seed)
		l.start[seed] = r.Matrix()
	}
	return r.Apply(x)
}

// nodes returns the rotation matrices (to differentiate with respect to).
func (l *learnedRotations) nodes() G.Nodes {
	var ns G.Nodes
	for _, s := range l.order {
		ns = append(ns, l.rs[s].R)
	}
	return ns
}

// step applies one Cayley SGD step to every rotation.
func (l *learnedRotations) step(lr float64) error {
	for _, s := range l.order {
		if err := (fakequant.CayleySGD{LR: lr}).Step(l.rs[s]); err != nil {
			return err
		}
	}
	return nil
}

// matrices returns copies of the current matrices by seed.
func (l *learnedRotations) matrices() map[uint64][]float64 {
	m := map[uint64][]float64{}
	for s, r := range l.rs {
		m[s] = r.Matrix()
	}
	return m
}

// maxDrift returns the largest change of an entry of a rotation since it was created.
func (l *learnedRotations) maxDrift() float64 {
	d := 0.0
	for s, r := range l.rs {
		for i, v := range r.Matrix() {
			d = max(d, math.Abs(v-l.start[s][i]))
		}
	}
	return d
}

// maxOrthogonalityError returns the largest |R^T R - I| entry over all rotations.
func (l *learnedRotations) maxOrthogonalityError() float64 {
	e := 0.0
	for _, r := range l.rs {
		e = max(e, r.OrthogonalityError())
	}
	return e
}

// fixedRotations is a stateless graph.RotateFunc multiplying by constant matrices (by seed), for
// evaluating and sampling a model trained with learned rotations.
func fixedRotations(m map[uint64][]float64) func(x *G.Node, seed uint64) (*G.Node, error) {
	return func(x *G.Node, seed uint64) (*G.Node, error) {
		v, ok := m[seed]
		n := x.Shape()[x.Dims()-1]
		if !ok || len(v) != n*n {
			return nil, fmt.Errorf("no %dx%d rotation for seed %x", n, n, seed)
		}
		d := make([]float32, len(v))
		for i := range v {
			d[i] = float32(v[i])
		}
		return G.Mul(x, G.NewConstant(tensor.New(tensor.WithShape(n, n), tensor.WithBacking(d))))
	}
}

// saveQuantized writes the trainer's checkpoint of one run (weights after SmoothQuant, the
// Prepared quantizer state, architecture and QConfig) to <out>/<run>.ckpt, plus the rotation:
// Hadamard runs record its seed, spin runs each learned matrix as "rotation/<seed in hex>".
func saveQuantized(o options, e exp, tr *qat.LMTrainer, rots *learnedRotations) error {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	c := tr.Checkpoint(map[string]string{"run": e.name, "method": e.method(), "bits": e.recipe.Bits()})
	if e.rotate {
		c.Meta["hadamard_seed"] = fmt.Sprint(rotateSeed)
	}
	if rots != nil {
		for seed, m := range rots.matrices() {
			r := make([]float32, len(m))
			for i, v := range m {
				r[i] = float32(v)
			}
			c.PutFloat32s(fmt.Sprintf("rotation/%x", seed), r) // row-major n x n, y = x R
		}
	}
	name := strings.NewReplacer(":", "_", "/", "_").Replace(e.name) + ".ckpt"
	return graph.SaveCheckpoint(filepath.Join(o.outDir, name), c)
}
