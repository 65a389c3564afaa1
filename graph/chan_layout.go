package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Per-channel ops. Gorgonia's Broadcast* helpers materialise repeated tensors (a Repeat node per
// broadcast axis, and its gradient), which makes BatchNorm and bias adds cost several full-size
// copies per step. The per-channel ops treat a tensor of shape s as (outer, C, inner) with
// C = s[axis] and work on it in one pass; each has its own file (chan_affine.go, chan_scale.go,
// chan_shift.go, chan_sum.go, chan_dot.go, chan_bcast.go). They are differentiable (SymDiff) and
// keep their output buffer from run to run (internal/opbuf via runKernel).

// chanLayout is what every per-channel op shares: its name, the channel axis and the shape of the
// full-size tensor. It holds no Do or SymDiff: each op type defines its own.
type chanLayout struct {
	pureOp
	name  string
	axis  int
	shape tensor.Shape // shape of the full-size tensor
	vec   tensor.Shape // {C}, the shape of a per-channel vector
}

func newChanLayout(name string, axis int, full tensor.Shape) chanLayout {
	return chanLayout{name: name, axis: axis, shape: full.Clone(), vec: tensor.Shape{full[axis]}}
}

// dims splits the full shape into (outer, C, inner) around the channel axis.
func (l *chanLayout) dims() (outer, c, inner int) {
	outer, inner = 1, 1
	for i, d := range l.shape {
		switch {
		case i < l.axis:
			outer *= d
		case i > l.axis:
			inner *= d
		}
	}
	return outer, l.shape[l.axis], inner
}

// types returns the Gorgonia types of a full-size tensor and of a per-channel vector.
func (l *chanLayout) types() (full, vec G.TensorType) {
	a := hm.TypeVariable('a')
	return G.TensorType{Dims: len(l.shape), Of: a}, G.TensorType{Dims: 1, Of: a}
}

func (l *chanLayout) ReturnsPtr() bool      { return false }
func (l *chanLayout) CallsExtern() bool     { return false }
func (l *chanLayout) OverwritesInput() int  { return -1 }
func (l *chanLayout) String() string        { return fmt.Sprintf("%s{axis %d, %v}", l.name, l.axis, l.shape) }
func (l *chanLayout) WriteHash(h hash.Hash) { writeOpHash(h, l) }
func (l *chanLayout) Hashcode() uint32      { return opHash(l) }

// DiffWRT: every per-channel op is differentiable with respect to every input.
func (l *chanLayout) DiffWRT(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
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
