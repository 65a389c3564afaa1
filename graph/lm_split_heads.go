package graph

import (
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// splitHeadsOp is x [B*T, H*hd] -> [B*H, T, hd], rotated by RoPE when base > 0.
type splitHeadsOp struct {
	headsLayout
	out opbuf.Buffer
}

func (op *splitHeadsOp) Arity() int { return 1 }
func (op *splitHeadsOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: len(op.tokens), Of: a}, G.TensorType{Dims: len(op.perHead), Of: a})
}
func (op *splitHeadsOp) outShape() tensor.Shape { return op.perHead }
func (op *splitHeadsOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.perHead.Clone(), nil
}
func (op *splitHeadsOp) String() string        { return "SplitHeads{" + op.params() + "}" }
func (op *splitHeadsOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *splitHeadsOp) Hashcode() uint32      { return opHash(op) }

func (op *splitHeadsOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *splitHeadsOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return runKernel(op, &op.out, prealloc, vals)
}
func (op *splitHeadsOp) kernel32(out []float32, in [][]float32) error {
	moveHeads(&op.headsLayout, false, out, in[0])
	return nil
}
func (op *splitHeadsOp) kernel64(out []float64, in [][]float64) error {
	moveHeads(&op.headsLayout, false, out, in[0])
	return nil
}

func (op *splitHeadsOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: the op is orthogonal (a permutation with rotations), so its gradient is its inverse.
func (op *splitHeadsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(&mergeHeadsOp{headsLayout: op.headsLayout}, grad)
	return G.Nodes{g}, err
}

// SplitHeads reshapes x [B*T, H*hd] (rows ordered batch-major, then position) to per-head
// sequences [B*H, T, hd]. With ropeBase > 0 it applies rotary position embedding (Su et al. 2021,
// "RoFormer"): in every head, the pair (x[2p], x[2p+1]) at position t is rotated by the angle
// t*ropeBase^(-2p/hd), so that the dot product of a rotated query at position m and a rotated key
// at position n depends on m-n only. hd must be even when rotating.
func SplitHeads(x *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error) {
	l, err := headsLayoutOf(true, x.Shape(), batch, seq, heads, ropeBase)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(&splitHeadsOp{headsLayout: l}, x)
}
