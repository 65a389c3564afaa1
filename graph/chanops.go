package graph

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Per-channel ops. Gorgonia's Broadcast* helpers materialise repeated tensors (a Repeat node per
// broadcast axis, and its gradient), which makes BatchNorm and bias adds cost several full-size
// copies per step. These ops treat a tensor of shape s as (outer, C, inner) with C = s[axis] and
// work on it in one pass. They are differentiable (SymDiff) and reuse output buffers
// (UsePreallocDo).

type chanKind byte

const (
	chAffine chanKind = iota // (x, a, b) -> x*a[c] + b[c]
	chScale                  // (x, a) -> x*a[c]
	chShift                  // (x, b) -> x + b[c]
	chSum                    // (x) -> [C] sum over everything but the channel axis
	chDot                    // (x, y) -> [C] sum of x*y over everything but the channel axis
	chBcast                  // (v) -> shape, v[c] repeated
)

var chanNames = [...]string{"ChanAffine", "ChanScale", "ChanShift", "ChanSum", "ChanDot", "ChanBcast"}

type chanOp struct {
	kind  chanKind
	axis  int
	shape tensor.Shape // shape of the full-size tensor
	// last is the output of the previous Do, reused by the next one: TapeMachine.Reset drops its
	// registers, so without it every op allocates its output on every step. A node's value is
	// therefore overwritten by the next run. Every node gets its own *chanOp.
	last *tensor.Dense
}

func (op *chanOp) Arity() int {
	switch op.kind {
	case chAffine:
		return 3
	case chScale, chShift, chDot:
		return 2
	}
	return 1
}

func (op *chanOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	full := G.TensorType{Dims: len(op.shape), Of: a}
	vec := G.TensorType{Dims: 1, Of: a}
	switch op.kind {
	case chAffine:
		return hm.NewFnType(full, vec, vec, full)
	case chScale, chShift:
		return hm.NewFnType(full, vec, full)
	case chSum:
		return hm.NewFnType(full, vec)
	case chDot:
		return hm.NewFnType(full, full, vec)
	}
	return hm.NewFnType(vec, full)
}

func (op *chanOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.kind == chSum || op.kind == chDot {
		return tensor.Shape{op.shape[op.axis]}, nil
	}
	return op.shape.Clone(), nil
}

func (op *chanOp) ReturnsPtr() bool     { return false }
func (op *chanOp) CallsExtern() bool    { return false }
func (op *chanOp) OverwritesInput() int { return -1 }
func (op *chanOp) String() string {
	return fmt.Sprintf("%s{axis %d, %v}", chanNames[op.kind], op.axis, op.shape)
}
func (op *chanOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *chanOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *chanOp) dims() (outer, c, inner int) {
	outer, inner = 1, 1
	for i, d := range op.shape {
		switch {
		case i < op.axis:
			outer *= d
		case i > op.axis:
			inner *= d
		}
	}
	return outer, op.shape[op.axis], inner
}

func (op *chanOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs", op, len(vals))
	}
	in0, ok := vals[0].(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("%v: input is %T, not a tensor", op, vals[0])
	}
	s, _ := op.InferShape()
	out := op.last
	if out == nil || out.Dtype() != in0.Dtype() || !out.Shape().Eq(s) || aliases(out, vals) {
		out = tensor.New(tensor.Of(in0.Dtype()), tensor.WithShape(s...))
	}
	v, err := op.UsePreallocDo(out, vals...)
	if d, ok := v.(*tensor.Dense); ok && err == nil {
		op.last = d
	}
	return v, err
}

func aliases(out *tensor.Dense, vals []G.Value) bool {
	for _, v := range vals {
		if t, ok := v.(*tensor.Dense); ok && t == out {
			return true
		}
	}
	return false
}

func (op *chanOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	out, ok := prealloc.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("%v: prealloc is %T", op, prealloc)
	}
	if want, _ := op.InferShape(); !out.Shape().Eq(want) {
		// a register holding another node's value: never write through a mismatched buffer
		t0, _ := vals[0].(tensor.Tensor)
		if t0 == nil {
			return nil, fmt.Errorf("%v: input %T", op, vals[0])
		}
		out = tensor.New(tensor.Of(t0.Dtype()), tensor.WithShape(want...))
	}
	switch d := out.Data().(type) {
	case []float32:
		in, err := dataOf[float32](vals)
		if err != nil {
			return nil, err
		}
		chanKernel(op, d, in)
	case []float64:
		in, err := dataOf[float64](vals)
		if err != nil {
			return nil, err
		}
		chanKernel(op, d, in)
	default:
		return nil, fmt.Errorf("%v: unsupported dtype %v", op, out.Dtype())
	}
	return out, nil
}

func dataOf[F float32 | float64](vals []G.Value) ([][]F, error) {
	out := make([][]F, len(vals))
	for i, v := range vals {
		t, ok := v.(tensor.Tensor)
		if !ok {
			return nil, fmt.Errorf("input %d is %T, not a tensor", i, v)
		}
		d, ok := t.Data().([]F)
		if !ok {
			return nil, fmt.Errorf("input %d has dtype %v", i, t.Dtype())
		}
		out[i] = d
	}
	return out, nil
}

func chanKernel[F float32 | float64](op *chanOp, out []F, in [][]F) {
	outer, C, inner := op.dims()
	switch op.kind {
	case chAffine, chScale, chShift:
		x := in[0]
		for o := 0; o < outer; o++ {
			for c := 0; c < C; c++ {
				base := (o*C + c) * inner
				xs, ys := x[base:base+inner], out[base:base+inner]
				switch op.kind {
				case chAffine:
					affine(ys, xs, in[1][c], in[2][c])
				case chScale:
					scale(ys, xs, in[1][c])
				default:
					shift(ys, xs, in[1][c])
				}
			}
		}
	case chSum, chDot:
		x := in[0]
		for c := range out[:C] {
			out[c] = 0
		}
		for o := 0; o < outer; o++ {
			for c := 0; c < C; c++ {
				base := (o*C + c) * inner
				if op.kind == chSum {
					out[c] += sum(x[base : base+inner])
				} else {
					out[c] += dot(x[base:base+inner], in[1][base:base+inner])
				}
			}
		}
	case chBcast:
		v := in[0]
		for o := 0; o < outer; o++ {
			for c := 0; c < C; c++ {
				base := (o*C + c) * inner
				ys := out[base : base+inner]
				for i := range ys {
					ys[i] = v[c]
				}
			}
		}
	}
}

// The slice kernels below are unrolled by four with the bounds checks hoisted out of the loop
// (the reslicing proves every index in range) and, for the reductions, four independent
// accumulators, so the loops are not bound by the latency of one chain of additions.

func affine[F float32 | float64](ys, xs []F, a, b F) {
	ys = ys[:len(xs)]
	for len(xs) >= 4 && len(ys) >= 4 {
		ys[0], ys[1], ys[2], ys[3] = xs[0]*a+b, xs[1]*a+b, xs[2]*a+b, xs[3]*a+b
		xs, ys = xs[4:], ys[4:]
	}
	for i, x := range xs {
		ys[i] = x*a + b
	}
}

func scale[F float32 | float64](ys, xs []F, a F) {
	ys = ys[:len(xs)]
	for len(xs) >= 4 && len(ys) >= 4 {
		ys[0], ys[1], ys[2], ys[3] = xs[0]*a, xs[1]*a, xs[2]*a, xs[3]*a
		xs, ys = xs[4:], ys[4:]
	}
	for i, x := range xs {
		ys[i] = x * a
	}
}

func shift[F float32 | float64](ys, xs []F, b F) {
	ys = ys[:len(xs)]
	for len(xs) >= 4 && len(ys) >= 4 {
		ys[0], ys[1], ys[2], ys[3] = xs[0]+b, xs[1]+b, xs[2]+b, xs[3]+b
		xs, ys = xs[4:], ys[4:]
	}
	for i, x := range xs {
		ys[i] = x + b
	}
}

func sum[F float32 | float64](xs []F) F {
	var s0, s1, s2, s3 F
	for len(xs) >= 4 {
		s0 += xs[0]
		s1 += xs[1]
		s2 += xs[2]
		s3 += xs[3]
		xs = xs[4:]
	}
	for _, x := range xs {
		s0 += x
	}
	return (s0 + s1) + (s2 + s3)
}

func dot[F float32 | float64](xs, ys []F) F {
	ys = ys[:len(xs)]
	var s0, s1, s2, s3 F
	for len(xs) >= 4 && len(ys) >= 4 {
		s0 += xs[0] * ys[0]
		s1 += xs[1] * ys[1]
		s2 += xs[2] * ys[2]
		s3 += xs[3] * ys[3]
		xs, ys = xs[4:], ys[4:]
	}
	for i, x := range xs {
		s0 += x * ys[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func (op *chanOp) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

func (op *chanOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	red := chanOp{kind: chSum, axis: op.axis, shape: op.shape}
	dot := chanOp{kind: chDot, axis: op.axis, shape: op.shape}
	scale := chanOp{kind: chScale, axis: op.axis, shape: op.shape}
	var out G.Nodes
	var err error
	app := func(o chanOp, in ...*G.Node) *G.Node { // a fresh *chanOp (own buffer) per node
		if err != nil {
			return nil
		}
		var n *G.Node
		n, err = G.ApplyOp(&chanOp{kind: o.kind, axis: o.axis, shape: o.shape.Clone()}, in...)
		return n
	}
	switch op.kind {
	case chAffine:
		out = G.Nodes{app(scale, grad, inputs[1]), app(dot, grad, inputs[0]), app(red, grad)}
	case chScale:
		out = G.Nodes{app(scale, grad, inputs[1]), app(dot, grad, inputs[0])}
	case chShift:
		out = G.Nodes{grad, app(red, grad)}
	case chSum:
		out = G.Nodes{app(chanOp{kind: chBcast, axis: op.axis, shape: op.shape}, grad)}
	case chDot:
		out = G.Nodes{app(scale, inputs[1], grad), app(scale, inputs[0], grad)}
	case chBcast:
		out = G.Nodes{app(red, grad)}
	}
	return out, err
}

func applyChan(kind chanKind, axis int, full tensor.Shape, in ...*G.Node) (*G.Node, error) {
	return G.ApplyOp(&chanOp{kind: kind, axis: axis, shape: full.Clone()}, in...)
}

// ChanAffine returns x*a[c] + b[c] where c indexes axis of x (a and b are vectors of length x.Shape()[axis]).
func ChanAffine(x, a, b *G.Node, axis int) (*G.Node, error) {
	return applyChan(chAffine, axis, x.Shape(), x, a, b)
}

// ChanScale returns x*a[c] where c indexes axis of x.
func ChanScale(x, a *G.Node, axis int) (*G.Node, error) {
	return applyChan(chScale, axis, x.Shape(), x, a)
}

// ChanShift returns x + b[c] where c indexes axis of x.
func ChanShift(x, b *G.Node, axis int) (*G.Node, error) {
	return applyChan(chShift, axis, x.Shape(), x, b)
}

// ChanSum returns the vector s[c] = sum of x over every axis but axis.
func ChanSum(x *G.Node, axis int) (*G.Node, error) { return applyChan(chSum, axis, x.Shape(), x) }

// ChanDot returns the vector s[c] = sum of x*y over every axis but axis (x and y have equal shapes).
func ChanDot(x, y *G.Node, axis int) (*G.Node, error) { return applyChan(chDot, axis, x.Shape(), x, y) }
