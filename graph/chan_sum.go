package graph

import (
	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chanSumOp is x -> s[c], the sum of x over every axis but the channel axis.
type chanSumOp struct {
	chanLayout
	out opbuf.Buffer
}

func newChanSum(axis int, full tensor.Shape) *chanSumOp {
	return &chanSumOp{chanLayout: newChanLayout("ChanSum", axis, full)}
}

func (op *chanSumOp) Arity() int { return 1 }
func (op *chanSumOp) Type() hm.Type {
	full, vec := op.types()
	return hm.NewFnType(full, vec)
}
func (op *chanSumOp) outShape() tensor.Shape { return op.vec }
func (op *chanSumOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape().Clone(), nil
}

func (op *chanSumOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *chanSumOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *chanSumOp) kernel32(out []float32, in [][]float32) error {
	chanSumKernel(op, out, in)
	return nil
}
func (op *chanSumOp) kernel64(out []float64, in [][]float64) error {
	chanSumKernel(op, out, in)
	return nil
}

func chanSumKernel[F float32 | float64](op *chanSumOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	x := in[0]
	for c := range out[:C] {
		out[c] = 0
	}
	for o := 0; o < outer; o++ {
		for c := 0; c < C; c++ {
			base := (o*C + c) * inner
			out[c] += sum(x[base : base+inner])
		}
	}
}

func (op *chanSumOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(newChanBcast(op.axis, op.shape), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// ChanSum returns the vector s[c] = sum of x over every axis but axis.
func ChanSum(x *G.Node, axis int) (*G.Node, error) {
	return G.ApplyOp(newChanSum(axis, x.Shape()), x)
}
