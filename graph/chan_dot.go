package graph

import (
	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chanDotOp is (x, y) -> s[c], the sum of x*y over every axis but the channel axis.
type chanDotOp struct {
	chanLayout
	out opbuf.Buffer
}

func newChanDot(axis int, full tensor.Shape) *chanDotOp {
	return &chanDotOp{chanLayout: newChanLayout("ChanDot", axis, full)}
}

func (op *chanDotOp) Arity() int { return 2 }
func (op *chanDotOp) Type() hm.Type {
	full, vec := op.types()
	return hm.NewFnType(full, full, vec)
}
func (op *chanDotOp) outShape() tensor.Shape { return op.vec }
func (op *chanDotOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.outShape().Clone(), nil
}

func (op *chanDotOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *chanDotOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *chanDotOp) kernel32(out []float32, in [][]float32) error {
	chanDotKernel(op, out, in)
	return nil
}
func (op *chanDotOp) kernel64(out []float64, in [][]float64) error {
	chanDotKernel(op, out, in)
	return nil
}

func chanDotKernel[F float32 | float64](op *chanDotOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	x, y := in[0], in[1]
	for c := range out[:C] {
		out[c] = 0
	}
	for o := 0; o < outer; o++ {
		for c := 0; c < C; c++ {
			base := (o*C + c) * inner
			out[c] += dot(x[base:base+inner], y[base:base+inner])
		}
	}
}

func (op *chanDotOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, y := inputs[0], inputs[1]
	gx, err := G.ApplyOp(newChanScale(op.axis, op.shape), y, grad)
	if err != nil {
		return nil, err
	}
	gy, err := G.ApplyOp(newChanScale(op.axis, op.shape), x, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{gx, gy}, nil
}

// ChanDot returns the vector s[c] = sum of x*y over every axis but axis (x and y have equal shapes).
func ChanDot(x, y *G.Node, axis int) (*G.Node, error) {
	return G.ApplyOp(newChanDot(axis, x.Shape()), x, y)
}
