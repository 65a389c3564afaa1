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

// cayleyGradOp is (A, G) -> dL/dA for Q = Cayley(A) and G = dL/dQ (see Cayley):
// dL/dS = -M^T G (Q + I)^T with M = (I + S)^-1, and dL/dA is the skew-symmetric part of dL/dS.
type cayleyGradOp struct {
	n   int
	id  uint64
	out opbuf.Buffer
}

var _ G.UsePreallocDoer = (*cayleyGradOp)(nil)

func (op *cayleyGradOp) Arity() int { return 2 }
func (op *cayleyGradOp) Type() hm.Type {
	t := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t)
}
func (op *cayleyGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.n, op.n}, nil
}
func (op *cayleyGradOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *cayleyGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	if len(vals) != 2 {
		return nil, errors.New("fakequant: CayleyGrad: two inputs expected")
	}
	a, err := squareInput(op.n, vals[0])
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: A: %w", op, err)
	}
	g, err := squareInput(op.n, vals[1])
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: gradient: %w", op, err)
	}
	y, err := op.out.Output(prealloc, a.Dtype(), tensor.Shape{op.n, op.n}, a, g)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	n := op.n
	q, m, err := cayleyForward(n, valueFloats(a))
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	for i := 0; i < n; i++ {
		q.Set(i, i, q.At(i, i)+1) // Q + I
	}
	var gs mat.Dense
	gs.Mul(m.T(), mat.NewDense(n, n, valueFloats(g)))
	gs.Mul(&gs, q.T())
	out := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			out[i*n+j] = -(gs.At(i, j) - gs.At(j, i)) / 2
		}
	}
	setFloats(y, out)
	return y, nil
}

func (op *cayleyGradOp) ReturnsPtr() bool     { return false }
func (op *cayleyGradOp) CallsExtern() bool    { return false }
func (op *cayleyGradOp) OverwritesInput() int { return -1 }
func (op *cayleyGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.CayleyGrad#%d{n=%d}", op.id, op.n)
}
func (op *cayleyGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *cayleyGradOp) String() string   { return fmt.Sprintf("CayleyGrad{%d}", op.n) }
