package graph

import (
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// mergeHeadsOp is x [B*H, T, hd] -> [B*T, H*hd], the inverse of splitHeadsOp (rotating back by
// RoPE when base > 0, as the gradient of a rotating split).
type mergeHeadsOp struct {
	headsLayout
	out opbuf.Buffer
}

func (op *mergeHeadsOp) Arity() int { return 1 }
func (op *mergeHeadsOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: len(op.perHead), Of: a}, G.TensorType{Dims: len(op.tokens), Of: a})
}
func (op *mergeHeadsOp) outShape() tensor.Shape { return op.tokens }
func (op *mergeHeadsOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.tokens.Clone(), nil
}
func (op *mergeHeadsOp) String() string        { return "MergeHeads{" + op.params() + "}" }
func (op *mergeHeadsOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *mergeHeadsOp) Hashcode() uint32      { return opHash(op) }

func (op *mergeHeadsOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *mergeHeadsOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *mergeHeadsOp) kernel32(out []float32, in [][]float32) error {
	moveHeads(&op.headsLayout, true, out, in[0])
	return nil
}
func (op *mergeHeadsOp) kernel64(out []float64, in [][]float64) error {
	moveHeads(&op.headsLayout, true, out, in[0])
	return nil
}

func (op *mergeHeadsOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: the op is orthogonal (a permutation with rotations), so its gradient is its inverse.
func (op *mergeHeadsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(&splitHeadsOp{headsLayout: op.headsLayout}, grad)
	return G.Nodes{g}, err
}

// MergeHeads is the inverse of SplitHeads without rotation: [B*H, T, hd] -> [B*T, H*hd].
func MergeHeads(x *G.Node, batch, seq, heads int) (*G.Node, error) {
	l, err := headsLayoutOf(false, x.Shape(), batch, seq, heads, 0)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(&mergeHeadsOp{headsLayout: l}, x)
}
