package graph

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// causalSoftmaxOp is s [M,T,T] -> softmax(scale*s) over the last axis with the causal mask: row t
// has columns 0..t, the rest are 0.
type causalSoftmaxOp struct {
	pureOp
	m, seq int
	scale  float64
	shape  tensor.Shape // [M,T,T]
	out    opbuf.Buffer
}

func newCausalSoftmaxOp(m, seq int, scale float64) *causalSoftmaxOp {
	return &causalSoftmaxOp{m: m, seq: seq, scale: scale, shape: tensor.Shape{m, seq, seq}}
}

func (op *causalSoftmaxOp) Arity() int { return 1 }
func (op *causalSoftmaxOp) Type() hm.Type {
	t := G.TensorType{Dims: 3, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (op *causalSoftmaxOp) outShape() tensor.Shape { return op.shape }
func (op *causalSoftmaxOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *causalSoftmaxOp) String() string {
	return fmt.Sprintf("CausalSoftmax{m%d t%d scale%g}", op.m, op.seq, op.scale)
}
func (op *causalSoftmaxOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *causalSoftmaxOp) Hashcode() uint32      { return opHash(op) }

func (op *causalSoftmaxOp) Do(vals ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(nil, vals...)
}
func (op *causalSoftmaxOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *causalSoftmaxOp) kernel32(out []float32, in [][]float32) error {
	causalSoftmax(op, out, in[0])
	return nil
}
func (op *causalSoftmaxOp) kernel64(out []float64, in [][]float64) error {
	causalSoftmax(op, out, in[0])
	return nil
}

func causalSoftmax[F float32 | float64](op *causalSoftmaxOp, out, s []F) {
	T := op.seq
	sc := F(op.scale)
	for r := 0; r < op.m*T; r++ {
		t := r % T
		row, y := s[r*T:(r+1)*T], out[r*T:(r+1)*T]
		mx := row[0] * sc
		for j := 1; j <= t; j++ {
			mx = max(mx, row[j]*sc)
		}
		var sum F
		for j := 0; j <= t; j++ {
			e := F(math.Exp(float64(row[j]*sc - mx)))
			y[j] = e
			sum += e
		}
		inv := 1 / sum
		for j := 0; j <= t; j++ {
			y[j] *= inv
		}
		clear(y[t+1:])
	}
}

func (op *causalSoftmaxOp) DiffWRT(int) []bool { return []bool{true} }
func (op *causalSoftmaxOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(newCausalSoftmaxGradOp(op.m, op.seq, op.scale), output, grad)
	return G.Nodes{g}, err
}

// CausalSoftmax returns softmax(scale*s) over the last axis of attention scores s [M, T, T] with
// the causal mask applied: row t attends to columns 0..t only (masked entries are exactly 0).
func CausalSoftmax(s *G.Node, scale float64) (*G.Node, error) {
	sh := s.Shape()
	if sh.Dims() != 3 || sh[1] != sh[2] {
		return nil, fmt.Errorf("graph: CausalSoftmax needs scores [M,T,T], got %v", sh)
	}
	return G.ApplyOp(newCausalSoftmaxOp(sh[0], sh[1], scale), s)
}
