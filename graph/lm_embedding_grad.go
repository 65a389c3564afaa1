package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// embeddingGradOp is (g [N,D], ids [N]) -> [V,D], the gradient of embeddingOp with respect to
// the table: row i of g is added into row ids[i] (scatter-add).
type embeddingGradOp struct {
	pureOp
	vocab, dim, n int
	shape         tensor.Shape // output shape
	out           opbuf.Buffer
}

func newEmbeddingGradOp(vocab, dim, n int) *embeddingGradOp {
	return &embeddingGradOp{vocab: vocab, dim: dim, n: n, shape: tensor.Shape{vocab, dim}}
}

func (op *embeddingGradOp) Arity() int { return 2 }
func (op *embeddingGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 1, Of: a}, G.TensorType{Dims: 2, Of: a})
}
func (op *embeddingGradOp) outShape() tensor.Shape { return op.shape }
func (op *embeddingGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *embeddingGradOp) String() string {
	return fmt.Sprintf("EmbeddingScatter{v%d d%d n%d}", op.vocab, op.dim, op.n)
}
func (op *embeddingGradOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *embeddingGradOp) Hashcode() uint32      { return opHash(op) }

func (op *embeddingGradOp) Do(vals ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(nil, vals...)
}
func (op *embeddingGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *embeddingGradOp) kernel32(out []float32, in [][]float32) error { return scatter(op, out, in) }
func (op *embeddingGradOp) kernel64(out []float64, in [][]float64) error { return scatter(op, out, in) }

func scatter[F float32 | float64](op *embeddingGradOp, out []F, in [][]F) error {
	g, ids := in[0], in[1]
	if len(ids) != op.n || len(g) != op.n*op.dim {
		return fmt.Errorf("input sizes %d, %d", len(g), len(ids))
	}
	clear(out)
	for i, v := range ids {
		id, err := tokenID(v, op.vocab)
		if err != nil {
			return err
		}
		dst, src := out[id*op.dim:(id+1)*op.dim], g[i*op.dim:(i+1)*op.dim]
		for j := range dst {
			dst[j] += src[j]
		}
	}
	return nil
}

func (op *embeddingGradOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (op *embeddingGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("graph: %v is not differentiable", op)
}
