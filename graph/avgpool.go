package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// avgPoolLayout is what avgPoolOp and avgPoolGradOp share: k x k windows with stride s and no
// padding on an NCHW input of shape in, whose output has shape out.
type avgPoolLayout struct {
	pureOp
	k, s    int
	in, out tensor.Shape // N, C, H, W of the forward input and output
}

func newAvgPoolLayout(k, s int, in tensor.Shape) avgPoolLayout {
	return avgPoolLayout{k: k, s: s, in: in.Clone(),
		out: tensor.Shape{in[0], in[1], (in[2]-k)/s + 1, (in[3]-k)/s + 1}}
}

func (l *avgPoolLayout) Arity() int { return 1 }
func (l *avgPoolLayout) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

// avgPoolOp is average pooling over k x k windows with stride s and no padding on NCHW input.
// (Gorgonia v0.9.18's AveragePool2D divides by the input width instead of the window size.)
type avgPoolOp struct {
	avgPoolLayout
	buf opbuf.Buffer
}

func (op *avgPoolOp) outShape() tensor.Shape { return op.out }
func (op *avgPoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.out.Clone(), nil
}
func (op *avgPoolOp) String() string {
	return fmt.Sprintf("AvgPool{k %d, s %d, in %v}", op.k, op.s, op.in)
}
func (op *avgPoolOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *avgPoolOp) Hashcode() uint32      { return opHash(op) }

func (op *avgPoolOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *avgPoolOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.buf, prealloc, vals)
}
func (op *avgPoolOp) kernel32(out []float32, in [][]float32) error {
	avgPool(&op.avgPoolLayout, out, in[0])
	return nil
}
func (op *avgPoolOp) kernel64(out []float64, in [][]float64) error {
	avgPool(&op.avgPoolLayout, out, in[0])
	return nil
}

func avgPool[F float32 | float64](l *avgPoolLayout, out, in []F) {
	H, W, OH, OW := l.in[2], l.in[3], l.out[2], l.out[3]
	inv := 1 / F(l.k*l.k)
	for p := 0; p < l.in[0]*l.in[1]; p++ {
		big, small := in[p*H*W:(p+1)*H*W], out[p*OH*OW:(p+1)*OH*OW]
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				var s F
				for dy := 0; dy < l.k; dy++ {
					row := big[(oy*l.s+dy)*W+ox*l.s:]
					for dx := 0; dx < l.k; dx++ {
						s += row[dx]
					}
				}
				small[oy*OW+ox] = s * inv
			}
		}
	}
}

func (op *avgPoolOp) DiffWRT(int) []bool { return []bool{true} }
func (op *avgPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	n, err := G.ApplyOp(&avgPoolGradOp{avgPoolLayout: op.avgPoolLayout}, grad)
	return G.Nodes{n}, err
}

// avgPool2D applies k x k average pooling with stride s (no padding) to NCHW x.
func avgPool2D(x *G.Node, k, s int) (*G.Node, error) {
	sh := x.Shape()
	if sh.Dims() != 4 || sh[2] < k || sh[3] < k || k < 1 || s < 1 {
		return nil, fmt.Errorf("graph: avg pool %dx%d stride %d on shape %v", k, k, s, sh)
	}
	return G.ApplyOp(&avgPoolOp{avgPoolLayout: newAvgPoolLayout(k, s, sh)}, x)
}
