package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Ops for the language-model layers that Gorgonia v0.9.18 lacks, one per file: the embedding
// gather (this file) and its scatter-add gradient (lm_embedding_grad.go), the head split and merge
// of attention with rotary position embedding folded in (lm_split_heads.go, lm_merge_heads.go,
// shared code in lm_heads.go) and a causal softmax with its gradient (lm_causal_softmax.go,
// lm_causal_softmax_grad.go). All work on float32 and float64 and keep their output buffer from
// run to run (internal/opbuf via runKernel).

// embeddingOp is (table [V,D], ids [N]) -> [N,D], row ids[i] of table for every i.
type embeddingOp struct {
	pureOp
	vocab, dim, n int
	shape         tensor.Shape // output shape
	out           opbuf.Buffer
}

func newEmbeddingOp(vocab, dim, n int) *embeddingOp {
	return &embeddingOp{vocab: vocab, dim: dim, n: n, shape: tensor.Shape{n, dim}}
}

func (op *embeddingOp) Arity() int { return 2 }
func (op *embeddingOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 1, Of: a}, G.TensorType{Dims: 2, Of: a})
}
func (op *embeddingOp) outShape() tensor.Shape { return op.shape }
func (op *embeddingOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *embeddingOp) String() string {
	return fmt.Sprintf("EmbeddingGather{v%d d%d n%d}", op.vocab, op.dim, op.n)
}
func (op *embeddingOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *embeddingOp) Hashcode() uint32      { return opHash(op) }

func (op *embeddingOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *embeddingOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *embeddingOp) kernel32(out []float32, in [][]float32) error { return gather(op, out, in) }
func (op *embeddingOp) kernel64(out []float64, in [][]float64) error { return gather(op, out, in) }

func gather[F float32 | float64](op *embeddingOp, out []F, in [][]F) error {
	table, ids := in[0], in[1]
	if len(ids) != op.n || len(table) != op.vocab*op.dim {
		return fmt.Errorf("input sizes %d, %d", len(table), len(ids))
	}
	for i, v := range ids {
		id, err := tokenID(v, op.vocab)
		if err != nil {
			return err
		}
		copy(out[i*op.dim:(i+1)*op.dim], table[id*op.dim:(id+1)*op.dim])
	}
	return nil
}

// tokenID converts a token id held in a float to an int, checking that it is an integer in
// [0, vocab).
func tokenID[F float32 | float64](v F, vocab int) (int, error) {
	id := int(v)
	if F(id) != v || id < 0 || id >= vocab {
		return 0, fmt.Errorf("token id %v outside [0, %d)", v, vocab)
	}
	return id, nil
}

func (op *embeddingOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op *embeddingOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(newEmbeddingGradOp(op.vocab, op.dim, op.n), grad, inputs[1])
	return G.Nodes{g, nil}, err
}

// Embedding looks up rows of table [V, D] for token ids [N] (a vector of the table's float
// type holding integers in [0, V)) and returns [N, D]. The gradient with respect to the table
// adds each output row's gradient into the row of its id (scatter-add); ids get no gradient. An
// id that is not an integer in range makes the machine's run fail with an error.
func Embedding(table, ids *G.Node) (*G.Node, error) {
	ts, is := table.Shape(), ids.Shape()
	if ts.Dims() != 2 || is.Dims() != 1 || table.Dtype() != ids.Dtype() {
		return nil, fmt.Errorf("graph: Embedding needs table [V,D] and ids [N] of one dtype, got %v %v and %v %v", ts, table.Dtype(), is, ids.Dtype())
	}
	return G.ApplyOp(newEmbeddingOp(ts[0], ts[1], is[0]), table, ids)
}
