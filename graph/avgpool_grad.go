package graph

import (
	"fmt"
	"hash"

	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// avgPoolGradOp is the gradient of avgPoolOp: dOut -> dIn, each output gradient spread evenly
// over its k x k window.
type avgPoolGradOp struct {
	avgPoolLayout
	buf opbuf.Buffer
}

func (op *avgPoolGradOp) outShape() tensor.Shape { return op.in }
func (op *avgPoolGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.in.Clone(), nil
}
func (op *avgPoolGradOp) String() string {
	return fmt.Sprintf("AvgPoolGrad{k %d, s %d, in %v}", op.k, op.s, op.in)
}
func (op *avgPoolGradOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *avgPoolGradOp) Hashcode() uint32      { return opHash(op) }

func (op *avgPoolGradOp) Do(vals ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(nil, vals...)
}
func (op *avgPoolGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.buf, prealloc, vals)
}
func (op *avgPoolGradOp) kernel32(out []float32, in [][]float32) error {
	avgPoolGrad(&op.avgPoolLayout, out, in[0])
	return nil
}
func (op *avgPoolGradOp) kernel64(out []float64, in [][]float64) error {
	avgPoolGrad(&op.avgPoolLayout, out, in[0])
	return nil
}

func avgPoolGrad[F float32 | float64](l *avgPoolLayout, out, in []F) {
	H, W, OH, OW := l.in[2], l.in[3], l.out[2], l.out[3]
	inv := 1 / F(l.k*l.k)
	clear(out)
	for p := 0; p < l.in[0]*l.in[1]; p++ {
		big, small := out[p*H*W:(p+1)*H*W], in[p*OH*OW:(p+1)*OH*OW]
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				g := small[oy*OW+ox] * inv
				for dy := 0; dy < l.k; dy++ {
					row := big[(oy*l.s+dy)*W+ox*l.s:]
					for dx := 0; dx < l.k; dx++ {
						row[dx] += g
					}
				}
			}
		}
	}
}

func (op *avgPoolGradOp) DiffWRT(int) []bool { return []bool{true} }
func (op *avgPoolGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("graph: %v: second derivative not implemented", op)
}
