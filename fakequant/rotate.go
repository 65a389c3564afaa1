package fakequant

import (
	"errors"
	"fmt"
	"github.com/qatgo/qatgo/internal/opbuf"
	"hash"
	"math"
	"math/rand/v2"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/quant"
	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// FWHT applies the unnormalised fast Walsh-Hadamard transform (Sylvester order) to v in place:
// v <- H_n v with H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]]. len(v) must be a power of two
// (FWHT panics otherwise: programmer error). H_n is symmetric and H_n H_n = n I.
func FWHT[F quant.Float](v []F) {
	n := len(v)
	if n&(n-1) != 0 {
		panic(fmt.Sprintf("fakequant: FWHT length %d is not a power of two", n))
	}
	for h := 1; h < n; h <<= 1 {
		for i := 0; i < n; i += 2 * h {
			a, b := v[i:i+h], v[i+h:i+2*h]
			b = b[:len(a)]
			for j := range a {
				x, y := a[j], b[j]
				a[j], b[j] = x+y, x-y
			}
		}
	}
}

// HadamardRotation is a fixed orthogonal rotation y = x R along the last axis of x with
// R = D H_n / sqrt(n), D = diag(Signs) a random +-1 diagonal: QuaRot's randomised Hadamard
// transform. Applying it costs O(n log n) per row (FWHT); its gradient is the exact transpose.
type HadamardRotation struct {
	// Out is the rotated node.
	Out *G.Node
	// N is the rotated dimension (a power of two).
	N int
	// Signs is the diagonal of D (+1 or -1), from the seed.
	Signs []float64
}

// Matrix returns R = D H_n / sqrt(n) as an n x n row-major slice (for export or folding into weights).
func (h *HadamardRotation) Matrix() []float64 { return hadamardMatrix(h.Signs) }

func hadamardMatrix(signs []float64) []float64 {
	n := len(signs)
	r := make([]float64, n*n)
	norm := 1 / math.Sqrt(float64(n))
	for i := 0; i < n; i++ {
		row := r[i*n : (i+1)*n]
		row[i] = 1 // row i of H is H e_i
		FWHT(row)
		for j := range row {
			row[j] *= signs[i] * norm
		}
	}
	return r
}

// RandomSigns returns n random +-1 values from seed (deterministic).
func RandomSigns(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	s := make([]float64, n)
	for i := range s {
		s[i] = 1
		if rng.Uint64()&1 == 1 {
			s[i] = -1
		}
	}
	return s
}

// Hadamard rotates x (float32 or float64, rank >= 1) along its last axis, whose length must be a
// power of two, by R = D H_n / sqrt(n) with random signs D drawn from seed.
func Hadamard(x *G.Node, seed uint64) (*HadamardRotation, error) {
	if x == nil || x.Dims() < 1 {
		return nil, errors.New("fakequant: Hadamard needs a node of rank >= 1")
	}
	if dt := x.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("fakequant: Hadamard: dtype %v (want float32 or float64)", dt)
	}
	shape := x.Shape()
	n := shape[len(shape)-1]
	if n < 1 || n&(n-1) != 0 {
		return nil, fmt.Errorf("fakequant: Hadamard: last axis %d is not a power of two", n)
	}
	signs := RandomSigns(n, seed)
	op := &hadamardOp{n: n, signs: signs, dims: x.Dims(), seed: seed, id: lastID.Add(1)}
	out, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, err
	}
	return &HadamardRotation{Out: out, N: n, Signs: signs}, nil
}

// hadamardOp applies x D H / sqrt(n) (transpose false) or x H D / sqrt(n) (transpose true, the
// gradient) row by row along the last axis.
type hadamardOp struct {
	n         int
	signs     []float64
	dims      int
	seed      uint64
	id        uint64
	transpose bool
	out       opbuf.Buffer
}

var (
	_ G.SDOp            = (*hadamardOp)(nil)
	_ G.UsePreallocDoer = (*hadamardOp)(nil)
)

func (op *hadamardOp) Arity() int { return 1 }
func (op *hadamardOp) Type() hm.Type {
	t := G.TensorType{Dims: op.dims, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (op *hadamardOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if len(in) != 1 {
		return nil, errors.New("fakequant: Hadamard: one input expected")
	}
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("fakequant: Hadamard: input shape %v", in[0])
	}
	return s.Clone(), nil
}
func (op *hadamardOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *hadamardOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, errors.New("fakequant: Hadamard: one input expected")
	}
	x, ok := vals[0].(*tensor.Dense)
	if !ok || x.IsView() || x.Shape().TotalSize()%op.n != 0 {
		return nil, fmt.Errorf("fakequant: Hadamard: input %T is not a dense tensor with rows of %d", vals[0], op.n)
	}
	y, err := op.out.Output(prealloc, x.Dtype(), x.Shape(), x)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	switch x.Dtype() {
	case tensor.Float32:
		hadamardRows(x.Float32s(), y.Float32s(), op.signs, op.transpose)
	case tensor.Float64:
		hadamardRows(x.Float64s(), y.Float64s(), op.signs, op.transpose)
	default:
		return nil, fmt.Errorf("fakequant: Hadamard: dtype %v", x.Dtype())
	}
	return y, nil
}

func hadamardRows[F quant.Float](x, y []F, signs []float64, transpose bool) {
	n := len(signs)
	norm := F(1 / math.Sqrt(float64(n)))
	for r := 0; r+n <= len(x); r += n {
		xs, ys := x[r:r+n], y[r:r+n]
		if transpose {
			copy(ys, xs)
			FWHT(ys)
			for i := range ys {
				ys[i] *= F(signs[i]) * norm
			}
			continue
		}
		for i := range ys {
			ys[i] = xs[i] * F(signs[i])
		}
		FWHT(ys)
		for i := range ys {
			ys[i] *= norm
		}
	}
}

func (op *hadamardOp) ReturnsPtr() bool     { return false }
func (op *hadamardOp) CallsExtern() bool    { return false }
func (op *hadamardOp) OverwritesInput() int { return -1 }
func (op *hadamardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.Hadamard#%d{n=%d dims=%d seed=%d T=%t}", op.id, op.n, op.dims, op.seed, op.transpose)
}
func (op *hadamardOp) Hashcode() uint32 { return hashOf(op) }
func (op *hadamardOp) String() string {
	if op.transpose {
		return fmt.Sprintf("HadamardT{%d}", op.n)
	}
	return fmt.Sprintf("Hadamard{%d}", op.n)
}
func (op *hadamardOp) DiffWRT(n int) []bool { return []bool{true} }
func (op *hadamardOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	t := &hadamardOp{n: op.n, signs: op.signs, dims: op.dims, seed: op.seed, id: op.id, transpose: !op.transpose}
	gx, err := G.ApplyOp(t, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{gx}, nil
}

// Rotation is a learnable orthogonal n x n matrix R (a Gorgonia node) applied as y = x R. Train it
// with CayleySGD, which keeps R orthogonal; do not hand R to an ordinary solver.
type Rotation struct {
	// R is the n x n rotation node.
	R *G.Node
	// N is its size.
	N int
}

// NewRotation adds a learnable n x n rotation named name to g, initialised to the randomised
// Hadamard matrix of seed when n is a power of two and to the identity otherwise.
func NewRotation(g *G.ExprGraph, dt tensor.Dtype, n int, name string, seed uint64) (*Rotation, error) {
	if n < 1 {
		return nil, fmt.Errorf("fakequant: rotation size %d (want >= 1)", n)
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("fakequant: rotation dtype %v (want float32 or float64)", dt)
	}
	var init []float64
	if n&(n-1) == 0 {
		init = hadamardMatrix(RandomSigns(n, seed))
	} else {
		init = make([]float64, n*n)
		for i := 0; i < n; i++ {
			init[i*n+i] = 1
		}
	}
	r := G.NewMatrix(g, dt, G.WithShape(n, n), G.WithName(name), G.WithValue(denseFrom(dt, []int{n, n}, init)))
	return &Rotation{R: r, N: n}, nil
}

// Apply returns x R along the last axis of x (shape [..., n], rank >= 2; higher ranks are reshaped
// to a matrix and back).
func (r *Rotation) Apply(x *G.Node) (*G.Node, error) {
	shape := x.Shape()
	if x.Dims() < 2 || shape[len(shape)-1] != r.N {
		return nil, fmt.Errorf("fakequant: rotation of size %d applied to shape %v", r.N, shape)
	}
	if x.Dims() == 2 {
		return G.Mul(x, r.R)
	}
	m, err := G.Reshape(x, tensor.Shape{shape.TotalSize() / r.N, r.N})
	if err != nil {
		return nil, err
	}
	y, err := G.Mul(m, r.R)
	if err != nil {
		return nil, err
	}
	return G.Reshape(y, shape.Clone())
}

// Matrix returns a float64 copy of R (row-major).
func (r *Rotation) Matrix() []float64 { return valueFloats(r.R.Value()) }

// OrthogonalityError returns max |R^T R - I| over all entries.
func (r *Rotation) OrthogonalityError() float64 {
	n := r.N
	m := mat.NewDense(n, n, r.Matrix())
	var p mat.Dense
	p.Mul(m.T(), m)
	e := 0.0
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			d := p.At(i, j)
			if i == j {
				d--
			}
			e = max(e, math.Abs(d))
		}
	}
	return e
}

// CayleySGD is gradient descent on the orthogonal group with the Cayley transform
// (Li, Fuxin and Todorovic 2020; used by SpinQuant): with G = dL/dR and the skew-symmetric
// W = G R^T - R G^T, one step is R <- (I + lr/2 W)^-1 (I - lr/2 W) R, an orthogonal matrix times R,
// followed by one Newton-Schulz polar correction R <- R (3I - R^T R)/2 against rounding drift. The
// update is computed in float64 with an LU solve (O(n^3), for rotations of up to a few thousand
// rows) and stored in R's dtype.
type CayleySGD struct {
	// LR is the learning rate lr of the Cayley step.
	LR float64
}

// Step updates R from its accumulated gradient and clears the gradient.
func (c CayleySGD) Step(r *Rotation) error {
	gv, err := r.R.Grad()
	if err != nil {
		return fmt.Errorf("fakequant: CayleySGD: %s has no gradient: %w", r.R.Name(), err)
	}
	n := r.N
	gs := valueFloats(gv)
	if len(gs) != n*n {
		return fmt.Errorf("fakequant: CayleySGD: gradient of %d values for %dx%d", len(gs), n, n)
	}
	for i, v := range gs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: CayleySGD: gradient of %s element %d is %v", ErrNonFinite, r.R.Name(), i, v)
		}
	}
	R := mat.NewDense(n, n, r.Matrix())
	Gm := mat.NewDense(n, n, gs)
	var w, t mat.Dense
	w.Mul(Gm, R.T())
	t.Mul(R, Gm.T())
	w.Sub(&w, &t) // W = G R^T - R G^T
	w.Scale(c.LR/2, &w)
	var lhs, rhs mat.Dense
	eye := mat.NewDiagDense(n, nil)
	for i := 0; i < n; i++ {
		eye.SetDiag(i, 1)
	}
	lhs.Add(eye, &w) // I + lr/2 W
	rhs.Sub(eye, &w) // I - lr/2 W
	rhs.Mul(&rhs, R)
	var next mat.Dense
	if err := next.Solve(&lhs, &rhs); err != nil {
		return fmt.Errorf("fakequant: CayleySGD: %w", err)
	}
	// One Newton-Schulz polar step, R <- R (3I - R^T R) / 2, removes the drift that storing R in
	// float32 (or rounding in float64) leaves; it is quadratically convergent near the orthogonal
	// group and a no-op to rounding error for an orthogonal R.
	var rtr, corr mat.Dense
	rtr.Mul(next.T(), &next)
	corr.Scale(-0.5, &rtr)
	for i := 0; i < n; i++ {
		corr.Set(i, i, corr.At(i, i)+1.5)
	}
	next.Mul(&next, &corr)
	setFloats(r.R.Value(), next.RawMatrix().Data)
	if z, ok := gv.(tensor.Tensor); ok {
		z.Zero()
	}
	return nil
}

func denseFrom(dt tensor.Dtype, shape []int, v []float64) *tensor.Dense {
	t := vecOf(dt, v)
	t.Reshape(shape...)
	return t
}
