package graph

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LMRuntimeFunc returns the node the graph uses in place of ref, the float value of the integer
// runtime's op named op (the runtime's op name: "tok_emb", "blk<i>.attn_norm", "blk<i>.attn.wq" ...
// "blk<i>.attn.rope_q", "blk<i>.attn" (attention), "blk<i>.attn.res", "blk<i>.mlp.swiglu",
// "blk<i>.mlp.hadamard", "norm", "head"; see LMOptions.Runtime), computed from inputs. It must
// keep ref's value's shape and gradient (RuntimeSubstitute does both).
type LMRuntimeFunc func(op string, ref *G.Node, inputs ...*G.Node) (*G.Node, error)

// LMRuntimeKernel computes the value of one runtime op into out (ref's shape) from the value of
// the float reference ref and of the op's inputs in, all as float64; shapes holds ref's shape and
// then the inputs' shapes.
type LMRuntimeKernel func(out, ref []float64, in [][]float64, shapes []tensor.Shape) error

// runtime applies Opts.Runtime to the float value ref of the runtime op named op (ref unchanged
// without it).
func (n *LMNet) runtime(op string, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
	if n.Opts.Runtime == nil {
		return ref, nil
	}
	y, err := n.Opts.Runtime(op, ref, inputs...)
	if err != nil {
		return nil, fmt.Errorf("runtime op %s: %w", op, err)
	}
	if !y.Shape().Eq(ref.Shape()) {
		return nil, fmt.Errorf("runtime op %s: substitute of shape %v for %v", op, y.Shape(), ref.Shape())
	}
	return y, nil
}

// RuntimeSubstitute returns a node whose value is k applied to ref's and the inputs' values and
// whose gradient is ref's (straight through: the inputs receive the float op's gradient through
// ref). name identifies the op (it must differ between substitutes of equal inputs: the graph
// merges nodes with equal hashes).
func RuntimeSubstitute(name string, k LMRuntimeKernel, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
	if k == nil {
		return nil, errors.New("graph: RuntimeSubstitute without a kernel")
	}
	return G.ApplyOp(&runtimeOp{name: name, k: k, dims: ref.Shape().Dims(), arity: 1 + len(inputs)}, append([]*G.Node{ref}, inputs...)...)
}

// runtimeOp's first input is the float reference, the others feed the kernel.
type runtimeOp struct {
	pureOp
	name  string
	k     LMRuntimeKernel
	dims  int
	arity int
	vals  [][]float64 // float64 copies of float32 inputs, kept from run to run
	res   []float64
	out   opbuf.Buffer
}

var _ G.SDOp = (*runtimeOp)(nil)

func (op *runtimeOp) Arity() int { return op.arity }
func (op *runtimeOp) Type() hm.Type {
	ts := make([]hm.Type, op.arity+1)
	ts[0] = G.TensorType{Dims: op.dims, Of: hm.TypeVariable('a')}
	for i := 1; i < op.arity; i++ {
		ts[i] = hm.TypeVariable(rune('b' + i))
	}
	ts[op.arity] = ts[0]
	return hm.NewFnType(ts...)
}
func (op *runtimeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if len(in) != op.arity {
		return nil, fmt.Errorf("graph: %v: %d inputs, want %d", op, len(in), op.arity)
	}
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("graph: %v: reference shape %v", op, in[0])
	}
	return s.Clone(), nil
}
func (op *runtimeOp) String() string        { return "Runtime{" + op.name + "}" }
func (op *runtimeOp) WriteHash(h hash.Hash) { writeOpHash(h, op) }
func (op *runtimeOp) Hashcode() uint32      { return opHash(op) }

func (op *runtimeOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != op.arity {
		return nil, fmt.Errorf("graph: %v: %d inputs, want %d", op, len(vals), op.arity)
	}
	if op.vals == nil {
		op.vals = make([][]float64, op.arity)
	}
	dense := make([]*tensor.Dense, op.arity)
	shapes := make([]tensor.Shape, op.arity)
	for i, v := range vals {
		d, ok := v.(*tensor.Dense)
		if !ok || d.IsView() {
			return nil, fmt.Errorf("graph: %v: input %d is %T, not a dense tensor", op, i, v)
		}
		dense[i], shapes[i] = d, d.Shape()
		switch x := d.Data().(type) {
		case []float64:
			op.vals[i] = x
		case []float32:
			op.vals[i] = widen(op.vals[i], x)
		default:
			return nil, fmt.Errorf("graph: %v: input %d has dtype %v", op, i, d.Dtype())
		}
	}
	y, err := op.out.Output(nil, dense[0].Dtype(), shapes[0], dense...)
	if err != nil {
		return nil, fmt.Errorf("graph: %v: %w", op, err)
	}
	switch yd := y.Data().(type) {
	case []float64:
		err = op.k(yd, op.vals[0], op.vals[1:], shapes)
	case []float32:
		if cap(op.res) < len(yd) {
			op.res = make([]float64, len(yd))
		}
		res := op.res[:len(yd)]
		if err = op.k(res, op.vals[0], op.vals[1:], shapes); err == nil {
			for i, v := range res {
				yd[i] = float32(v)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("graph: %v: %w", op, err)
	}
	return y, nil
}

// widen returns x as float64, in buf when it is large enough.
func widen(buf []float64, x []float32) []float64 {
	if cap(buf) < len(x) {
		buf = make([]float64, len(x))
	}
	buf = buf[:len(x)]
	for i, v := range x {
		buf[i] = float64(v)
	}
	return buf
}

func (op *runtimeOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	if n > 0 {
		d[0] = true
	}
	return d
}

// SymDiff passes the gradient to the float reference only.
func (op *runtimeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.arity {
		return nil, fmt.Errorf("graph: %v: %d inputs, want %d", op, len(inputs), op.arity)
	}
	out := make(G.Nodes, len(inputs))
	out[0] = grad
	return out, nil
}
