package qat

import (
	"fmt"
	"sync/atomic"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// HadamardRotate is a graph.RotateFunc: QuaRot's randomised Hadamard rotation (fakequant.Hadamard)
// of a linear's input and weight columns, run online at every linear (LMOptions.Rotate). Widths
// must be powers of two. For rotations folded into the weights use QuaRotRotations.
func HadamardRotate(x *G.Node, seed uint64) (*G.Node, error) {
	r, err := fakequant.Hadamard(x, seed)
	if err != nil {
		return nil, err
	}
	return r.Out, nil
}

// startRotation returns QuaRot's randomised Hadamard matrix of size n from seed when n is a power
// of two, else the identity.
func startRotation(n int, seed uint64) []float64 {
	if m, err := fakequant.RandomHadamardMatrix(n, seed); err == nil {
		return m
	}
	m := make([]float64, n*n)
	for i := 0; i < n; i++ {
		m[i*n+i] = 1
	}
	return m
}

// QuaRotRotations returns the fixed rotations of QuaRot (Ashkboos et al. 2024) for an LM of
// configuration c: randomised Hadamard matrices (fakequant.RandomHadamardMatrix) for the
// residual rotation R1 (seed) and each block's head rotation R2 (seed+1+i), and the online
// Walsh-Hadamard transform before w2. Dim, Dim/Heads and Hidden must be powers of two. Fold them
// with LM.FoldRotations (or pass them to LMOptions.Rotations).
func QuaRotRotations(c graph.LMConfig, seed uint64) (graph.LMRotations, error) {
	r1, err := fakequant.RandomHadamardMatrix(c.Dim, seed)
	if err != nil {
		return graph.LMRotations{}, fmt.Errorf("qat: QuaRot residual rotation: %w", err)
	}
	r := graph.LMRotations{Residual: graph.FixedMatrix{N: c.Dim, M: r1}, Hadamard: true}
	hd := c.Dim / max(c.Heads, 1)
	for i := 0; i < c.Layers; i++ {
		r2, err := fakequant.RandomHadamardMatrix(hd, seed+1+uint64(i))
		if err != nil {
			return graph.LMRotations{}, fmt.Errorf("qat: QuaRot head rotation: %w", err)
		}
		r.Head = append(r.Head, graph.FixedMatrix{N: hd, M: r2})
	}
	if c.Hidden&(c.Hidden-1) != 0 {
		return graph.LMRotations{}, fmt.Errorf("qat: QuaRot online Hadamard needs a power-of-two Hidden, got %d", c.Hidden)
	}
	return r, nil
}

var cayleyID atomic.Uint64

// CayleyRotation is a learned rotation R = R0 Cayley(A) (a graph.Matrix): R0 is a fixed starting
// rotation and A an unconstrained n x n parameter (float32 or float64, the dtype of the graphs it
// is used in), zero at the start, through
// fakequant.Cayley (Q = (I+S)^-1 (I-S), S = (A - A^T)/2), so R stays orthogonal whatever an
// ordinary optimizer does to A. Every graph built with it shares A's tensor.
type CayleyRotation struct {
	N    int
	R0   []float64     // n x n row-major
	A    *tensor.Dense // [n, n]
	name string
	last *G.Node // A's node in the graph built last
}

var _ graph.Matrix = (*CayleyRotation)(nil)

// NewCayleyRotation returns the rotation R0 Cayley(0) = R0 of size n (r0: n*n values) with a
// parameter A of dtype dt (float32 or float64).
func NewCayleyRotation(n int, r0 []float64, dt tensor.Dtype) (*CayleyRotation, error) {
	if n < 1 || len(r0) != n*n {
		return nil, fmt.Errorf("qat: Cayley rotation of size %d with %d starting values", n, len(r0))
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("qat: Cayley rotation of dtype %v (want float32 or float64)", dt)
	}
	return &CayleyRotation{N: n, R0: append([]float64(nil), r0...), A: tensor.New(tensor.Of(dt), tensor.WithShape(n, n)),
		name: fmt.Sprintf("cayley#%d", cayleyID.Add(1))}, nil
}

// Size implements graph.Matrix.
func (c *CayleyRotation) Size() int { return c.N }

// Node implements graph.Matrix: R0 times the Cayley transform of A's node in g (of A's dtype).
func (c *CayleyRotation) Node(g *G.ExprGraph, dt tensor.Dtype) (*G.Node, error) {
	if dt != c.A.Dtype() {
		return nil, fmt.Errorf("qat: Cayley rotation of dtype %v in a %v graph", c.A.Dtype(), dt)
	}
	n := c.N
	a := G.NewMatrix(g, dt, G.WithShape(n, n), G.WithName(c.name+"/A"), G.WithValue(c.A))
	q, err := fakequant.Cayley(a)
	if err != nil {
		return nil, err
	}
	r0, err := (graph.FixedMatrix{N: n, M: c.R0}).Node(g, dt)
	if err != nil {
		return nil, err
	}
	r, err := G.Mul(r0, q)
	if err != nil {
		return nil, err
	}
	c.last = a
	return r, nil
}

// Values implements graph.Matrix: R0 Cayley(A), computed in float64.
func (c *CayleyRotation) Values() []float64 {
	var a64 []float64
	switch a := c.A.Data().(type) {
	case []float32:
		a64 = make([]float64, len(a))
		for i, v := range a {
			a64[i] = float64(v)
		}
	case []float64:
		a64 = a
	}
	q, err := fakequant.CayleyMatrix(c.N, a64)
	if err != nil { // I + S is invertible for every real A: not reached
		panic(fmt.Sprintf("qat: %v", err))
	}
	return mulSquare(c.R0, q, c.N)
}

func mulSquare(a, b []float64, n int) []float64 {
	out := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for k := 0; k < n; k++ {
			x := a[i*n+k]
			for j := 0; j < n; j++ {
				out[i*n+j] += x * b[k*n+j]
			}
		}
	}
	return out
}

// LearnedRotations are SpinQuant's learned rotations (Liu et al. 2024): a residual rotation R1
// and one head rotation R2 per block, each a CayleyRotation started at QuaRot's randomised
// Hadamard matrix (the identity for sizes that are not powers of two), plus the fixed online
// Walsh-Hadamard transform before w2 when Hadamard is set. It is the qat.StepHook that trains
// them in a Trainer (Adam on the Cayley parameters, at LR times the trainer's schedule
// factor): pass Rotations() as the NextTokenTask's Opts.Rotations and the LearnedRotations as
// Trainer.Hook, train, then fold with LM.FoldRotations(*Rotations()) and evaluate without
// Rotations.
type LearnedRotations struct {
	Residual *CayleyRotation
	Head     []*CayleyRotation
	Hadamard bool
	LR       float64 // peak learning rate of the Cayley parameters

	opt   *optimizer
	nodes G.Nodes // the parameter nodes of the training graph
}

var _ StepHook = (*LearnedRotations)(nil)

// NewLearnedRotations returns learned rotations for an LM of configuration c, started at the
// randomised Hadamard matrices of seed (as QuaRotRotations), with peak learning rate lr and
// parameters of dtype dt (the LM's; the Trainer trains float32 ones).
func NewLearnedRotations(c graph.LMConfig, dt tensor.Dtype, seed uint64, lr float64, hadamard bool) (*LearnedRotations, error) {
	if !(lr > 0) {
		return nil, fmt.Errorf("qat: learned rotations: learning rate %v (want > 0)", lr)
	}
	opt, err := newOptimizerClip(Adam, 0, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	l := &LearnedRotations{Hadamard: hadamard, LR: lr, opt: opt}
	if l.Residual, err = NewCayleyRotation(c.Dim, startRotation(c.Dim, seed), dt); err != nil {
		return nil, err
	}
	hd := c.Dim / max(c.Heads, 1)
	for i := 0; i < c.Layers; i++ {
		r, err := NewCayleyRotation(hd, startRotation(hd, seed+1+uint64(i)), dt)
		if err != nil {
			return nil, err
		}
		l.Head = append(l.Head, r)
	}
	return l, nil
}

// Rotations returns the rotations for LMOptions.Rotations or LM.FoldRotations.
func (l *LearnedRotations) Rotations() *graph.LMRotations {
	r := &graph.LMRotations{Residual: l.Residual, Hadamard: l.Hadamard}
	for _, h := range l.Head {
		r.Head = append(r.Head, h)
	}
	return r
}

func (l *LearnedRotations) all() []*CayleyRotation {
	return append([]*CayleyRotation{l.Residual}, l.Head...)
}

// Nodes implements StepHook: the Cayley parameters' nodes in the graph built last (the
// trainer's training graph, which calls Nodes right after building it).
func (l *LearnedRotations) Nodes() G.Nodes {
	l.nodes = l.nodes[:0]
	for _, r := range l.all() {
		if r.last != nil {
			l.nodes = append(l.nodes, r.last)
		}
	}
	return l.nodes
}

// Step implements StepHook: one Adam step on every Cayley parameter from its gradient in the
// training graph, at LR times lrFactor.
func (l *LearnedRotations) Step(lrFactor float64) error {
	if len(l.nodes) == 0 {
		return fmt.Errorf("qat: learned rotations: no training graph (Nodes was not called)")
	}
	l.opt.beginStep(nil)
	for i, n := range l.nodes {
		gv, err := n.Grad()
		if err != nil {
			return fmt.Errorf("qat: learned rotations: %s has no gradient: %w", n.Name(), err)
		}
		g, ok := gv.Data().([]float32)
		if !ok {
			return fmt.Errorf("qat: learned rotations: gradient of %s is %v (want float32)", n.Name(), gv.Dtype())
		}
		a, ok := l.all()[i].A.Data().([]float32)
		if !ok {
			return fmt.Errorf("qat: learned rotations: %s is not float32", n.Name())
		}
		l.opt.update(n.Name(), a, g, l.LR*lrFactor, false)
	}
	return nil
}

// MaxOrthogonalityError returns the largest |R^T R - I| entry over the rotations' current values.
func (l *LearnedRotations) MaxOrthogonalityError() float64 {
	e := 0.0
	for _, r := range l.all() {
		v, n := r.Values(), r.N
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var d float64
				for k := 0; k < n; k++ {
					d += v[k*n+i] * v[k*n+j]
				}
				if i == j {
					d--
				}
				e = max(e, abs64(d))
			}
		}
	}
	return e
}

// MaxDrift returns the largest change of an entry of a rotation from its starting matrix.
func (l *LearnedRotations) MaxDrift() float64 {
	d := 0.0
	for _, r := range l.all() {
		for i, v := range r.Values() {
			d = max(d, abs64(v-r.R0[i]))
		}
	}
	return d
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
