package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// causalSoftmaxGradOp is (y, gy [M,T,T]) -> scale*y*(gy - sum(gy*y)) per row, the gradient of
// causalSoftmaxOp with respect to its scores, given its output y and the output gradient gy.
type causalSoftmaxGradOp struct {
	pureOp
	m, seq int
	scale  float64
	shape  tensor.Shape // [M,T,T]
	out    opbuf.Buffer
}

func newCausalSoftmaxGradOp(m, seq int, scale float64) *causalSoftmaxGradOp {
	return &causalSoftmaxGradOp{m: m, seq: seq, scale: scale, shape: tensor.Shape{m, seq, seq}}
}

func (op *causalSoftmaxGradOp) Arity() int { return 2 }
func (op *causalSoftmaxGradOp) Type() hm.Type {
	t := G.TensorType{Dims: 3, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t)
}
func (op *causalSoftmaxGradOp) outShape() tensor.Shape { return op.shape }
func (op *causalSoftmaxGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *causalSoftmaxGradOp) String() string {
	return fmt.Sprintf("CausalSoftmaxGrad{m%d t%d scale%g}", op.m, op.seq, op.scale)
}
func (op *causalSoftmaxGradOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *causalSoftmaxGradOp) Hashcode() uint32      { return opHash(op) }

func (op *causalSoftmaxGradOp) Do(vals ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(nil, vals...)
}
func (op *causalSoftmaxGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *causalSoftmaxGradOp) kernel32(out []float32, in [][]float32) error {
	causalSoftmaxGrad(op, out, in[0], in[1])
	return nil
}
func (op *causalSoftmaxGradOp) kernel64(out []float64, in [][]float64) error {
	causalSoftmaxGrad(op, out, in[0], in[1])
	return nil
}

func causalSoftmaxGrad[F float32 | float64](op *causalSoftmaxGradOp, out, y, gy []F) {
	T := op.seq
	sc := F(op.scale)
	for r := 0; r < op.m*T; r++ {
		t := r % T
		yr, gr, o := y[r*T:(r+1)*T], gy[r*T:(r+1)*T], out[r*T:(r+1)*T]
		var dot F
		for j := 0; j <= t; j++ {
			dot += gr[j] * yr[j]
		}
		for j := 0; j <= t; j++ {
			o[j] = sc * yr[j] * (gr[j] - dot)
		}
		clear(o[t+1:])
	}
}

func (op *causalSoftmaxGradOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (op *causalSoftmaxGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("graph: %v is not differentiable", op)
}
