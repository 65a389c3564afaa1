package graph

import (
	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chanScaleOp is (x, a) -> x*a[c], c indexing the channel axis of x.
type chanScaleOp struct {
	chanLayout
	out opbuf.Buffer
}

func newChanScale(axis int, full tensor.Shape) *chanScaleOp {
	return &chanScaleOp{chanLayout: newChanLayout("ChanScale", axis, full)}
}

func (op *chanScaleOp) Arity() int { return 2 }
func (op *chanScaleOp) Type() hm.Type {
	full, vec := op.types()
	return hm.NewFnType(full, vec, full)
}
func (op *chanScaleOp) outShape() tensor.Shape { return op.shape }
func (op *chanScaleOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape().Clone(), nil
}

func (op *chanScaleOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *chanScaleOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *chanScaleOp) kernel32(out []float32, in [][]float32) error {
	chanScaleKernel(op, out, in)
	return nil
}
func (op *chanScaleOp) kernel64(out []float64, in [][]float64) error {
	chanScaleKernel(op, out, in)
	return nil
}

func chanScaleKernel[F float32 | float64](op *chanScaleOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	x := in[0]
	for o := 0; o < outer; o++ {
		for c := 0; c < C; c++ {
			base := (o*C + c) * inner
			scale(out[base:base+inner], x[base:base+inner], in[1][c])
		}
	}
}

func (op *chanScaleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, a := inputs[0], inputs[1]
	gx, err := G.ApplyOp(newChanScale(op.axis, op.shape), grad, a)
	if err != nil {
		return nil, err
	}
	ga, err := G.ApplyOp(newChanDot(op.axis, op.shape), grad, x)
	if err != nil {
		return nil, err
	}
	return G.Nodes{gx, ga}, nil
}

// ChanScale returns x*a[c] where c indexes axis of x.
func ChanScale(x, a *G.Node, axis int) (*G.Node, error) {
	return G.ApplyOp(newChanScale(axis, x.Shape()), x, a)
}
