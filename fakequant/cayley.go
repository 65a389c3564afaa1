package fakequant

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	"gonum.org/v1/gonum/mat"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Cayley returns the Cayley transform of the skew-symmetric part of a square matrix a [n, n]
// (float32 or float64):
//
//	S = (A - A^T) / 2,   Q = (I + S)^-1 (I - S)
//
// Q is orthogonal for every A (Cayley 1846; used to parameterise rotations by an unconstrained
// matrix, e.g. learned rotations in SpinQuant, Liu et al. 2024), Q = I at A = 0, and Q has no
// eigenvalue -1. Training A with any optimizer keeps Q exactly orthogonal, up to rounding. Its
// gradient is exact (a second op, cayleyGradOp): with G = dL/dQ and M = (I + S)^-1,
//
//	dL/dS = -M^T G (Q + I)^T,   dL/dA = (dL/dS - (dL/dS)^T) / 2.
//
// The O(n^3) solves run in float64 (gonum), for rotations of up to a few thousand rows.
func Cayley(a *G.Node) (*G.Node, error) {
	if a == nil || a.Dims() != 2 || a.Shape()[0] != a.Shape()[1] || a.Shape()[0] < 1 {
		return nil, errors.New("fakequant: Cayley needs a square matrix node")
	}
	if dt := a.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("fakequant: Cayley: dtype %v (want float32 or float64)", dt)
	}
	return G.ApplyOp(&cayleyOp{n: a.Shape()[0], id: lastID.Add(1)}, a)
}

// cayleyOp is A [n,n] -> (I + S)^-1 (I - S), S = (A - A^T)/2.
type cayleyOp struct {
	n   int
	id  uint64
	out opbuf.Buffer
}

var (
	_ G.SDOp            = (*cayleyOp)(nil)
	_ G.UsePreallocDoer = (*cayleyOp)(nil)
)

func (op *cayleyOp) Arity() int { return 1 }
func (op *cayleyOp) Type() hm.Type {
	t := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (op *cayleyOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.n, op.n}, nil
}
func (op *cayleyOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *cayleyOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	a, err := squareInput(op.n, vals...)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	y, err := op.out.Output(prealloc, a.Dtype(), tensor.Shape{op.n, op.n}, a)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	q, _, err := cayleyForward(op.n, valueFloats(a))
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	setFloats(y, q.RawMatrix().Data)
	return y, nil
}

// cayleyForward returns Q = (I + S)^-1 (I - S) and M = (I + S)^-1 for S = (A - A^T)/2.
func cayleyForward(n int, a []float64) (q, m *mat.Dense, err error) {
	ipS := mat.NewDense(n, n, nil) // I + S
	imS := mat.NewDense(n, n, nil) // I - S
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			s := (a[i*n+j] - a[j*n+i]) / 2
			d := 0.0
			if i == j {
				d = 1
			}
			ipS.Set(i, j, d+s)
			imS.Set(i, j, d-s)
		}
	}
	// I + S is invertible for every real skew-symmetric S (its eigenvalues are 1 + i*lambda).
	m = mat.NewDense(n, n, nil)
	if err := m.Inverse(ipS); err != nil {
		return nil, nil, fmt.Errorf("inverting I + S: %w", err)
	}
	q = mat.NewDense(n, n, nil)
	q.Mul(m, imS)
	return q, m, nil
}

func squareInput(n int, vals ...G.Value) (*tensor.Dense, error) {
	if len(vals) == 0 {
		return nil, errors.New("no input")
	}
	a, ok := vals[0].(*tensor.Dense)
	if !ok || a.IsView() || !a.Shape().Eq(tensor.Shape{n, n}) {
		return nil, fmt.Errorf("input %T %v is not a dense %dx%d tensor", vals[0], vals[0].Shape(), n, n)
	}
	return a, nil
}

func (op *cayleyOp) ReturnsPtr() bool     { return false }
func (op *cayleyOp) CallsExtern() bool    { return false }
func (op *cayleyOp) OverwritesInput() int { return -1 }
func (op *cayleyOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.Cayley#%d{n=%d}", op.id, op.n)
}
func (op *cayleyOp) Hashcode() uint32   { return hashOf(op) }
func (op *cayleyOp) String() string     { return fmt.Sprintf("Cayley{%d}", op.n) }
func (op *cayleyOp) DiffWRT(int) []bool { return []bool{true} }
func (op *cayleyOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, errors.New("fakequant: Cayley: one input expected")
	}
	g, err := G.ApplyOp(&cayleyGradOp{n: op.n, id: op.id}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// CayleyMatrix returns the Cayley transform (I + S)^-1 (I - S), S = (A - A^T)/2, of a (n x n
// row-major) as n x n row-major values: the value Cayley computes in a graph.
func CayleyMatrix(n int, a []float64) ([]float64, error) {
	if n < 1 || len(a) != n*n {
		return nil, fmt.Errorf("fakequant: Cayley of %d values as %dx%d", len(a), n, n)
	}
	q, _, err := cayleyForward(n, a)
	if err != nil {
		return nil, fmt.Errorf("fakequant: Cayley: %w", err)
	}
	return q.RawMatrix().Data, nil
}
