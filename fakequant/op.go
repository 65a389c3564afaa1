package fakequant

import (
	"fmt"
	"github.com/qatgo/qatgo/internal/opbuf"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Compile-time interface checks.
var (
	_ G.Op              = (*fqOp)(nil)
	_ G.SDOp            = (*fqOp)(nil)
	_ G.UsePreallocDoer = (*fqOp)(nil)
	_ G.Op              = (*fqGradOp)(nil)
	_ G.UsePreallocDoer = (*fqGradOp)(nil)
	_ G.Op              = (*stashOp)(nil)
	_ G.UsePreallocDoer = (*stashOp)(nil)
)

// fqOp is the fake-quantize forward op. Inputs: x, then the learnable parameter vectors of the
// method (LSQ: log-scale [, offset]; PACT: alpha; Observed: none).
type fqOp struct {
	q   *Quantizer
	out opbuf.Buffer // owned output buffer
}

func (op *fqOp) Arity() int { return 1 + op.q.numParams() }

func (op *fqOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	xt := G.TensorType{Dims: op.q.xdims, Of: a}
	ts := []hm.Type{xt}
	for i := 0; i < op.q.numParams(); i++ {
		ts = append(ts, G.TensorType{Dims: 1, Of: a})
	}
	return hm.NewFnType(append(ts, xt)...)
}

func (op *fqOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) { return op.q.inputShape(in) }

func (op *fqOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }

func (op *fqOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	x, err := op.q.input(vals, op.Arity())
	if err != nil {
		return nil, err
	}
	y, err := op.out.Output(prealloc, x.Dtype(), x.Shape(), x)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	if err := op.q.forward(x, y, vals[1:]); err != nil {
		return nil, err
	}
	return y, nil
}

func (op *fqOp) ReturnsPtr() bool     { return false }
func (op *fqOp) CallsExtern() bool    { return false }
func (op *fqOp) OverwritesInput() int { return -1 }
func (op *fqOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.FakeQuant#%d{%s}", op.q.id, op.q.cfg.hashString())
}
func (op *fqOp) Hashcode() uint32 { return hashOf(op) }
func (op *fqOp) String() string   { return "FakeQuant{" + op.q.cfg.Name + "}" }

// DiffWRT reports that every input (x and the learnable parameters) is differentiable.
func (op *fqOp) DiffWRT(inputs int) []bool {
	r := make([]bool, inputs)
	for i := range r {
		r[i] = true
	}
	return r
}

// SymDiff builds one gradient op that computes the input gradient in one pass and stashes the
// parameter gradients, plus one small node per parameter that reads its stash.
func (op *fqOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("fakequant: %s: SymDiff got %d inputs, want %d", op.q.cfg.Name, len(inputs), op.Arity())
	}
	gop := &fqGradOp{q: op.q}
	args := append(append(G.Nodes{}, inputs...), grad)
	gx, err := G.ApplyOp(gop, args...)
	if err != nil {
		return nil, err
	}
	res := G.Nodes{gx}
	for i := 0; i < op.q.numParams(); i++ {
		st := &stashOp{g: gop, which: i}
		n, err := G.ApplyOp(st, gx)
		if err != nil {
			return nil, err
		}
		res = append(res, n)
	}
	return res, nil
}

// fqGradOp computes the input gradient of a fake-quantize node and stashes its parameter gradients.
// Inputs: the forward op's inputs followed by the output gradient.
type fqGradOp struct {
	q     *Quantizer
	out   opbuf.Buffer
	stash [2][]float64 // parameter gradients of the last run, in parameter order
}

func (op *fqGradOp) Arity() int { return 2 + op.q.numParams() }

func (op *fqGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	xt := G.TensorType{Dims: op.q.xdims, Of: a}
	ts := []hm.Type{xt}
	for i := 0; i < op.q.numParams(); i++ {
		ts = append(ts, G.TensorType{Dims: 1, Of: a})
	}
	return hm.NewFnType(append(ts, xt, xt)...)
}

func (op *fqGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) { return op.q.inputShape(in) }

func (op *fqGradOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }

func (op *fqGradOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	x, err := op.q.input(vals, op.Arity())
	if err != nil {
		return nil, err
	}
	gy, ok := vals[len(vals)-1].(*tensor.Dense)
	if !ok || gy.Dtype() != x.Dtype() || !gy.Shape().Eq(x.Shape()) {
		return nil, fmt.Errorf("fakequant: %s: output gradient %T does not match input %v %v", op.q.cfg.Name, vals[len(vals)-1], x.Dtype(), x.Shape())
	}
	gx, err := op.out.Output(prealloc, x.Dtype(), x.Shape(), x, gy)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	k := op.q.layout.Slices()
	for i := 0; i < op.q.numParams(); i++ {
		if len(op.stash[i]) != k {
			op.stash[i] = make([]float64, k)
		}
	}
	if err := op.q.backward(x, gy, gx, vals[1:len(vals)-1], op.stash[0], op.stash[1]); err != nil {
		return nil, err
	}
	return gx, nil
}

func (op *fqGradOp) ReturnsPtr() bool     { return false }
func (op *fqGradOp) CallsExtern() bool    { return false }
func (op *fqGradOp) OverwritesInput() int { return -1 }
func (op *fqGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.FakeQuantGrad#%d{%s}", op.q.id, op.q.cfg.hashString())
}
func (op *fqGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *fqGradOp) String() string   { return "FakeQuantGrad{" + op.q.cfg.Name + "}" }

// stashOp returns parameter gradient number which of its gradient op. Its only input is the
// gradient op's output, which orders it after that op.
type stashOp struct {
	g     *fqGradOp
	which int
	out   opbuf.Buffer
}

func (op *stashOp) Arity() int { return 1 }

func (op *stashOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: op.g.q.xdims, Of: a}, G.TensorType{Dims: 1, Of: a})
}

func (op *stashOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.g.q.layout.Slices()}, nil
}

func (op *stashOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }

func (op *stashOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("fakequant: %s: stash op got %d inputs", op.g.q.cfg.Name, len(vals))
	}
	k := op.g.q.layout.Slices()
	src := op.g.stash[op.which]
	if len(src) != k {
		return nil, fmt.Errorf("fakequant: %s: parameter gradient read before the gradient op ran", op.g.q.cfg.Name)
	}
	out, err := op.out.Output(prealloc, vals[0].Dtype(), tensor.Shape{k})
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	switch out.Dtype() {
	case tensor.Float32:
		d := out.Float32s()
		for i, v := range src {
			d[i] = float32(v)
		}
	case tensor.Float64:
		copy(out.Float64s(), src)
	default:
		return nil, fmt.Errorf("fakequant: %s: unsupported dtype %v", op.g.q.cfg.Name, out.Dtype())
	}
	return out, nil
}

func (op *stashOp) ReturnsPtr() bool     { return false }
func (op *stashOp) CallsExtern() bool    { return false }
func (op *stashOp) OverwritesInput() int { return -1 }
func (op *stashOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.ParamGrad#%d.%d{%s}", op.g.q.id, op.which, op.g.q.cfg.hashString())
}
func (op *stashOp) Hashcode() uint32 { return hashOf(op) }
func (op *stashOp) String() string {
	return fmt.Sprintf("FakeQuantParamGrad{%s,%d}", op.g.q.cfg.Name, op.which)
}

type hashWriter interface{ WriteHash(hash.Hash) }

func hashOf(op hashWriter) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// inputShape is the InferShape of both ops: the shape of the first input (x).
func (q *Quantizer) inputShape(in []G.DimSizer) (tensor.Shape, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("fakequant: %s: no input shape", q.cfg.Name)
	}
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("fakequant: %s: input shape %v is not a tensor.Shape", q.cfg.Name, in[0])
	}
	return s.Clone(), nil
}
