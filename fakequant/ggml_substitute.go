package fakequant

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ggmlKernel computes one of llama.cpp's float32 ops from its inputs (float32 data and shapes)
// into out, which has the shape of the float reference.
type ggmlKernel interface {
	name() string
	run(in [][]float32, shapes []tensor.Shape, out []float32) error
}

// ggmlSubstitute returns a node whose value is k applied to inputs and whose gradient is that of
// ref, the float op k reproduces in llama.cpp's arithmetic (same shape, same inputs): the
// forward is llama.cpp's, the backward the float op's.
func ggmlSubstitute(k ggmlKernel, ref *G.Node, inputs ...*G.Node) (*G.Node, error) {
	for _, in := range inputs {
		if in.Dtype() != ref.Dtype() {
			return nil, fmt.Errorf("fakequant: %s: input %v is %v, reference %v", k.name(), in.Name(), in.Dtype(), ref.Dtype())
		}
	}
	return G.ApplyOp(&substituteOp{k: k, dims: ref.Shape().Dims(), arity: 1 + len(inputs)}, append([]*G.Node{ref}, inputs...)...)
}

// substituteOp's first input is the float reference; the others feed the kernel.
type substituteOp struct {
	k     ggmlKernel
	dims  int
	arity int
	out   opbuf.Buffer
}

var _ G.SDOp = (*substituteOp)(nil)

func (op *substituteOp) Arity() int { return op.arity }
func (op *substituteOp) Type() hm.Type {
	ts := make([]hm.Type, op.arity+1)
	ts[0] = G.TensorType{Dims: op.dims, Of: hm.TypeVariable('a')}
	for i := 1; i < op.arity; i++ {
		ts[i] = hm.TypeVariable(rune('b' + i))
	}
	ts[op.arity] = ts[0]
	return hm.NewFnType(ts...)
}
func (op *substituteOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if len(in) != op.arity {
		return nil, fmt.Errorf("fakequant: %s: %d inputs, want %d", op.k.name(), len(in), op.arity)
	}
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("fakequant: %s: reference shape %v", op.k.name(), in[0])
	}
	return s.Clone(), nil
}
func (op *substituteOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != op.arity {
		return nil, fmt.Errorf("fakequant: %s: %d inputs, want %d", op.k.name(), len(vals), op.arity)
	}
	ref, ok := vals[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("fakequant: %s: reference %T is not a dense tensor", op.k.name(), vals[0])
	}
	ins := make([][]float32, op.arity-1)
	shapes := make([]tensor.Shape, op.arity-1)
	dense := []*tensor.Dense{ref}
	for i, v := range vals[1:] {
		d, ok := v.(*tensor.Dense)
		if !ok || d.IsView() {
			return nil, fmt.Errorf("fakequant: %s: input %T is not a dense tensor", op.k.name(), v)
		}
		dense = append(dense, d)
		shapes[i] = d.Shape()
		switch x := d.Data().(type) {
		case []float32:
			ins[i] = x
		case []float64:
			ins[i] = toF32(x)
		default:
			return nil, fmt.Errorf("fakequant: %s: dtype %v", op.k.name(), d.Dtype())
		}
	}
	y, err := op.out.Output(nil, ref.Dtype(), ref.Shape(), dense...)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %s: %w", op.k.name(), err)
	}
	switch yd := y.Data().(type) {
	case []float32:
		err = op.k.run(ins, shapes, yd)
	case []float64:
		tmp := make([]float32, len(yd))
		err = op.k.run(ins, shapes, tmp)
		for i, v := range tmp {
			yd[i] = float64(v)
		}
	default:
		err = fmt.Errorf("dtype %v", ref.Dtype())
	}
	if err != nil {
		return nil, fmt.Errorf("fakequant: %s: %w", op.k.name(), err)
	}
	return y, nil
}

func (op *substituteOp) ReturnsPtr() bool     { return false }
func (op *substituteOp) CallsExtern() bool    { return false }
func (op *substituteOp) OverwritesInput() int { return -1 }
func (op *substituteOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.GGMLSubstitute{%s dims=%d arity=%d}", op.k.name(), op.dims, op.arity)
}
func (op *substituteOp) Hashcode() uint32 { return hashOf(op) }
func (op *substituteOp) String() string   { return "GGML" + op.k.name() }
func (op *substituteOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	if n > 0 {
		d[0] = true
	}
	return d
}

// SymDiff passes the gradient to the float reference only: its inputs receive the float op's
// gradient through it.
func (op *substituteOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.arity {
		return nil, errors.New("fakequant: GGML substitute: wrong number of inputs")
	}
	out := make(G.Nodes, len(inputs))
	out[0] = grad
	return out, nil
}
