package graph

import (
	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chanShiftOp is (x, b) -> x + b[c], c indexing the channel axis of x.
type chanShiftOp struct {
	chanLayout
	out opbuf.Buffer
}

func newChanShift(axis int, full tensor.Shape) *chanShiftOp {
	return &chanShiftOp{chanLayout: newChanLayout("ChanShift", axis, full)}
}

func (op *chanShiftOp) Arity() int { return 2 }
func (op *chanShiftOp) Type() hm.Type {
	full, vec := op.types()
	return hm.NewFnType(full, vec, full)
}
func (op *chanShiftOp) outShape() tensor.Shape { return op.shape }
func (op *chanShiftOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape().Clone(), nil
}

func (op *chanShiftOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *chanShiftOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *chanShiftOp) kernel32(out []float32, in [][]float32) error {
	chanShiftKernel(op, out, in)
	return nil
}
func (op *chanShiftOp) kernel64(out []float64, in [][]float64) error {
	chanShiftKernel(op, out, in)
	return nil
}

func chanShiftKernel[F float32 | float64](op *chanShiftOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	x := in[0]
	for o := 0; o < outer; o++ {
		for c := 0; c < C; c++ {
			base := (o*C + c) * inner
			shift(out[base:base+inner], x[base:base+inner], in[1][c])
		}
	}
}

func (op *chanShiftOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	gb, err := G.ApplyOp(newChanSum(op.axis, op.shape), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{grad, gb}, nil
}

// ChanShift returns x + b[c] where c indexes axis of x.
func ChanShift(x, b *G.Node, axis int) (*G.Node, error) {
	return G.ApplyOp(newChanShift(axis, x.Shape()), x, b)
}
