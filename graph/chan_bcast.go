package graph

import (
	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chanBcastOp is v -> the full-size tensor whose elements in channel c are v[c] (the gradient
// of chanSumOp).
type chanBcastOp struct {
	chanLayout
	out opbuf.Buffer
}

func newChanBcast(axis int, full tensor.Shape) *chanBcastOp {
	return &chanBcastOp{chanLayout: newChanLayout("ChanBcast", axis, full)}
}

func (op *chanBcastOp) Arity() int { return 1 }
func (op *chanBcastOp) Type() hm.Type {
	full, vec := op.types()
	return hm.NewFnType(vec, full)
}
func (op *chanBcastOp) outShape() tensor.Shape { return op.shape }
func (op *chanBcastOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape().Clone(), nil
}

func (op *chanBcastOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *chanBcastOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *chanBcastOp) kernel32(out []float32, in [][]float32) error {
	chanBcastKernel(op, out, in)
	return nil
}
func (op *chanBcastOp) kernel64(out []float64, in [][]float64) error {
	chanBcastKernel(op, out, in)
	return nil
}

func chanBcastKernel[F float32 | float64](op *chanBcastOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	v := in[0]
	for o := 0; o < outer; o++ {
		for c := 0; c < C; c++ {
			base := (o*C + c) * inner
			ys := out[base : base+inner]
			for i := range ys {
				ys[i] = v[c]
			}
		}
	}
}

func (op *chanBcastOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(newChanSum(op.axis, op.shape), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}
