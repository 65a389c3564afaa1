package graph

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// avgPoolOp is average pooling over k x k windows with stride s and no padding on NCHW input.
// (Gorgonia v0.9.18's AveragePool2D divides by the input width instead of the window size.)
// With grad set it is the gradient op: input is dOut, output is dIn.
type avgPoolOp struct {
	k, s int
	in   tensor.Shape // N, C, H, W of the forward input
	grad bool
}

func (op avgPoolOp) outShape() tensor.Shape {
	return tensor.Shape{op.in[0], op.in[1], (op.in[2]-op.k)/op.s + 1, (op.in[3]-op.k)/op.s + 1}
}

func (op avgPoolOp) Arity() int { return 1 }
func (op avgPoolOp) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (op avgPoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.grad {
		return op.in.Clone(), nil
	}
	return op.outShape(), nil
}
func (op avgPoolOp) ReturnsPtr() bool     { return false }
func (op avgPoolOp) CallsExtern() bool    { return false }
func (op avgPoolOp) OverwritesInput() int { return -1 }
func (op avgPoolOp) String() string {
	return fmt.Sprintf("AvgPool{k %d, s %d, in %v, grad %v}", op.k, op.s, op.in, op.grad)
}
func (op avgPoolOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op avgPoolOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op avgPoolOp) Do(vals ...G.Value) (G.Value, error) {
	t, ok := vals[0].(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("%v: input %T", op, vals[0])
	}
	s, _ := op.InferShape()
	return op.UsePreallocDo(tensor.New(tensor.Of(t.Dtype()), tensor.WithShape(s...)), vals...)
}

func (op avgPoolOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	out, ok := prealloc.(tensor.Tensor)
	if !ok || len(vals) != 1 {
		return nil, fmt.Errorf("%v: bad arguments", op)
	}
	if want, _ := op.InferShape(); !out.Shape().Eq(want) {
		// a register holding another node's value: never write through a mismatched buffer
		t0, _ := vals[0].(tensor.Tensor)
		if t0 == nil {
			return nil, fmt.Errorf("%v: input %T", op, vals[0])
		}
		out = tensor.New(tensor.Of(t0.Dtype()), tensor.WithShape(want...))
	}
	in, ok := vals[0].(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("%v: input %T", op, vals[0])
	}
	switch o := out.Data().(type) {
	case []float32:
		i, ok := in.Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("%v: dtype mismatch", op)
		}
		avgPoolKernel(op, o, i)
	case []float64:
		i, ok := in.Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("%v: dtype mismatch", op)
		}
		avgPoolKernel(op, o, i)
	default:
		return nil, fmt.Errorf("%v: dtype %v", op, out.Dtype())
	}
	return out, nil
}

func avgPoolKernel[F float32 | float64](op avgPoolOp, out, in []F) {
	os := op.outShape()
	H, W, OH, OW := op.in[2], op.in[3], os[2], os[3]
	inv := 1 / F(op.k*op.k)
	if op.grad {
		clear(out)
	}
	for p := 0; p < op.in[0]*op.in[1]; p++ {
		var big, small []F
		if op.grad {
			big, small = out[p*H*W:(p+1)*H*W], in[p*OH*OW:(p+1)*OH*OW]
		} else {
			big, small = in[p*H*W:(p+1)*H*W], out[p*OH*OW:(p+1)*OH*OW]
		}
		for oy := 0; oy < OH; oy++ {
			for ox := 0; ox < OW; ox++ {
				if op.grad {
					g := small[oy*OW+ox] * inv
					for dy := 0; dy < op.k; dy++ {
						row := big[(oy*op.s+dy)*W+ox*op.s:]
						for dx := 0; dx < op.k; dx++ {
							row[dx] += g
						}
					}
					continue
				}
				var s F
				for dy := 0; dy < op.k; dy++ {
					row := big[(oy*op.s+dy)*W+ox*op.s:]
					for dx := 0; dx < op.k; dx++ {
						s += row[dx]
					}
				}
				small[oy*OW+ox] = s * inv
			}
		}
	}
}

func (op avgPoolOp) DiffWRT(n int) []bool { return []bool{true} }

func (op avgPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if op.grad {
		return nil, fmt.Errorf("%v: second derivative not implemented", op)
	}
	g := op
	g.grad = true
	n, err := G.ApplyOp(g, grad)
	return G.Nodes{n}, err
}

// avgPool2D applies k x k average pooling with stride s (no padding) to NCHW x.
func avgPool2D(x *G.Node, k, s int) (*G.Node, error) {
	sh := x.Shape()
	if sh.Dims() != 4 || sh[2] < k || sh[3] < k || k < 1 || s < 1 {
		return nil, fmt.Errorf("graph: avg pool %dx%d stride %d on shape %v", k, k, s, sh)
	}
	return G.ApplyOp(avgPoolOp{k: k, s: s, in: sh.Clone()}, x)
}
