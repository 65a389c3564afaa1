package graph

import (
	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chanAffineOp is (x, a, b) -> x*a[c] + b[c], c indexing the channel axis of x.
type chanAffineOp struct {
	chanLayout
	out opbuf.Buffer
}

func newChanAffine(axis int, full tensor.Shape) *chanAffineOp {
	return &chanAffineOp{chanLayout: newChanLayout("ChanAffine", axis, full)}
}

func (op *chanAffineOp) Arity() int { return 3 }
func (op *chanAffineOp) Type() hm.Type {
	full, vec := op.types()
	return hm.NewFnType(full, vec, vec, full)
}
func (op *chanAffineOp) outShape() tensor.Shape { return op.shape }
func (op *chanAffineOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape().Clone(), nil
}

func (op *chanAffineOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *chanAffineOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *chanAffineOp) kernel32(out []float32, in [][]float32) error {
	chanAffineKernel(op, out, in)
	return nil
}
func (op *chanAffineOp) kernel64(out []float64, in [][]float64) error {
	chanAffineKernel(op, out, in)
	return nil
}

func chanAffineKernel[F float32 | float64](op *chanAffineOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	x := in[0]
	for o := 0; o < outer; o++ {
		for c := 0; c < C; c++ {
			base := (o*C + c) * inner
			affine(out[base:base+inner], x[base:base+inner], in[1][c], in[2][c])
		}
	}
}

func (op *chanAffineOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, a := inputs[0], inputs[1]
	ga, err := G.ApplyOp(newChanScale(op.axis, op.shape), grad, a)
	if err != nil {
		return nil, err
	}
	gs, err := G.ApplyOp(newChanDot(op.axis, op.shape), grad, x)
	if err != nil {
		return nil, err
	}
	gb, err := G.ApplyOp(newChanSum(op.axis, op.shape), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{ga, gs, gb}, nil
}

// ChanAffine returns x*a[c] + b[c] where c indexes axis of x (a and b are vectors of length x.Shape()[axis]).
func ChanAffine(x, a, b *G.Node, axis int) (*G.Node, error) {
	return G.ApplyOp(newChanAffine(axis, x.Shape()), x, a, b)
}
