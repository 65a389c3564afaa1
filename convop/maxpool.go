package convop

import (
	"fmt"
	"github.com/qatgo/qatgo/internal/opbuf"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MaxPool2D is a drop-in replacement for gorgonia.MaxPool2D on NCHW input
// with symmetric padding: each output is the maximum of a kernel[0] x
// kernel[1] window moved by stride; padded positions never win (windows are
// clipped to the image), and ties go to the first position in row-major
// order, as in Gorgonia. The output is (N, C, outH, outW) with
//
//	outH = (H + 2*pad[0] - kernel[0])/stride[0] + 1
//
// and likewise for the width. The gradient routes each output gradient to
// the position that won the forward pass. pad must be nil or have two
// values. It returns an error for bad shapes, padding or strides.
func MaxPool2D(x *G.Node, kernel tensor.Shape, pad, stride []int) (*G.Node, error) {
	if pad == nil {
		pad = []int{0, 0}
	}
	if len(kernel) != 2 || len(pad) != 2 || len(stride) != 2 {
		return nil, fmt.Errorf("convop: MaxPool2D needs 2 values each for kernel, pad and stride, got %v, %v, %v", kernel, pad, stride)
	}
	if kernel[0] <= 0 || kernel[1] <= 0 || stride[0] <= 0 || stride[1] <= 0 || pad[0] < 0 || pad[1] < 0 {
		return nil, fmt.Errorf("convop: MaxPool2D: bad kernel %v, pad %v or stride %v", kernel, pad, stride)
	}
	if pad[0] >= kernel[0] || pad[1] >= kernel[1] {
		return nil, fmt.Errorf("convop: MaxPool2D: padding %v must be smaller than the kernel %v", pad, kernel)
	}
	if x.Shape().Dims() != 4 {
		return nil, fmt.Errorf("convop: MaxPool2D: x has shape %v, want 4 dimensions", x.Shape())
	}
	if dt := x.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("convop: MaxPool2D: unsupported dtype %v (want float32 or float64)", dt)
	}
	op := &maxPoolOp{params: params{kh: kernel[0], kw: kernel[1], padH: pad[0], padW: pad[1], strideH: stride[0], strideW: stride[1]}, state: new(poolState)}
	if _, err := op.InferShape(x.Shape()); err != nil {
		return nil, err
	}
	return G.ApplyOp(op, x)
}

// poolState is shared by a max-pool op and its gradient op: the index of
// the winning input element of every output element, written by the
// forward pass and read by the backward pass of the same run.
type poolState struct {
	argmax []int
}

type maxPoolOp struct {
	params
	state *poolState
	out   opbuf.Buffer
}

var (
	_ G.SDOp            = (*maxPoolOp)(nil)
	_ G.UsePreallocDoer = (*maxPoolOp)(nil)
	_ G.UsePreallocDoer = (*maxPoolGradOp)(nil)
)

func (op *maxPoolOp) Arity() int           { return 1 }
func (op *maxPoolOp) ReturnsPtr() bool     { return false }
func (op *maxPoolOp) CallsExtern() bool    { return false }
func (op *maxPoolOp) OverwritesInput() int { return -1 }
func (op *maxPoolOp) Hashcode() uint32     { return hashOf(op) }
func (op *maxPoolOp) String() string       { return "qatgo.MaxPool2D{" + op.params.String() + "}" }
func (op *maxPoolOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "qatgo.MaxPool2D{%d,%d,%d,%d,%d,%d}", op.kh, op.kw, op.padH, op.padW, op.strideH, op.strideW)
}
func (op *maxPoolOp) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

func (op *maxPoolOp) outHW(h, w int) (int, int) {
	return (h+2*op.padH-op.kh)/op.strideH + 1, (w+2*op.padW-op.kw)/op.strideW + 1
}

func (op *maxPoolOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("convop: MaxPool2D takes 1 input, got %d", len(inputs))
	}
	s, ok := inputs[0].(tensor.Shape)
	if !ok || s.Dims() != 4 {
		return nil, fmt.Errorf("convop: MaxPool2D expects a 4-D shape, got %v", inputs[0])
	}
	oh, ow := op.outHW(s[2], s[3])
	if oh <= 0 || ow <= 0 {
		return nil, fmt.Errorf("convop: MaxPool2D %v: input %v gives an empty output", op.params, s)
	}
	return tensor.Shape{s[0], s[1], oh, ow}, nil
}

func (op *maxPoolOp) Do(inputs ...G.Value) (G.Value, error) { return op.do(nil, inputs) }

// UsePreallocDo pools into prealloc.
func (op *maxPoolOp) UsePreallocDo(prealloc G.Value, inputs ...G.Value) (G.Value, error) {
	if prealloc == nil {
		return nil, fmt.Errorf("convop: nil prealloc")
	}
	return op.do(prealloc, inputs)
}

func (op *maxPoolOp) do(prealloc G.Value, inputs []G.Value) (G.Value, error) {
	ts, err := tensors(1, inputs)
	if err != nil {
		return nil, err
	}
	x := ts[0]
	shp, err := op.InferShape(x.Shape())
	if err != nil {
		return nil, err
	}
	y, err := op.out.Output(prealloc, x.Dtype(), shp, ts...)
	if err != nil {
		return nil, err
	}
	if n := shp.TotalSize(); cap(op.state.argmax) < n {
		op.state.argmax = make([]int, n)
	} else {
		op.state.argmax = op.state.argmax[:n]
	}
	xs := x.Shape()
	planes, h, w, oh, ow := xs[0]*xs[1], xs[2], xs[3], shp[2], shp[3]
	argmax := op.state.argmax
	// Each goroutine pools a range of planes; argmax holds indices into x.
	parallel(planes, elemWorkers(planes, h*w), func(_, lo, hi int) {
		in, out := lo*h*w, lo*oh*ow
		am := argmax[out : hi*oh*ow]
		switch x.Dtype() {
		case tensor.Float32:
			maxPool(&op.params, hi-lo, h, w, oh, ow, x.Data().([]float32)[in:], y.Data().([]float32)[out:], am)
		case tensor.Float64:
			maxPool(&op.params, hi-lo, h, w, oh, ow, x.Data().([]float64)[in:], y.Data().([]float64)[out:], am)
		}
		for i := range am {
			am[i] += in
		}
	})
	return y, nil
}

// DiffWRT reports that MaxPool2D is differentiable with respect to x.
func (op *maxPoolOp) DiffWRT(inputs int) []bool { return []bool{true} }

// SymDiff returns the gradient node for x.
func (op *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("convop: MaxPool2D SymDiff needs 1 input, got %d", len(inputs))
	}
	dx, err := G.ApplyOp(&maxPoolGradOp{params: op.params, xShape: inputs[0].Shape().Clone(), state: op.state}, output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// maxPool computes y and the winning indices for planes planes of h x w.
func maxPool[T float32 | float64](p *params, planes, h, w, oh, ow int, x, y []T, argmax []int) {
	if p.kh == 2 && p.kw == 2 && p.strideH == 2 && p.strideW == 2 && p.padH == 0 && p.padW == 0 {
		for c := 0; c < planes; c++ {
			base := c * h * w
			for oy := 0; oy < oh; oy++ {
				r0 := base + 2*oy*w
				r1 := r0 + w
				yr := y[(c*oh+oy)*ow : (c*oh+oy+1)*ow]
				ar := argmax[(c*oh+oy)*ow : (c*oh+oy+1)*ow]
				for ox := range yr {
					// Branch-free: conditional moves pick the index, max
					// the value (random data defeats branch prediction).
					i := r0 + 2*ox
					j := r1 + 2*ox
					a0, a1, a2, a3 := x[i], x[i+1], x[j], x[j+1]
					best, bi := a0, i
					if a1 > best {
						bi = i + 1
					}
					best = max(best, a1)
					if a2 > best {
						bi = j
					}
					best = max(best, a2)
					if a3 > best {
						bi = j + 1
					}
					best = max(best, a3)
					yr[ox], ar[ox] = best, bi
				}
			}
		}
		return
	}
	for c := 0; c < planes; c++ {
		base := c * h * w
		for oy := 0; oy < oh; oy++ {
			y0 := oy*p.strideH - p.padH
			y1 := min(y0+p.kh, h)
			y0 = max(y0, 0)
			for ox := 0; ox < ow; ox++ {
				x0 := ox*p.strideW - p.padW
				x1 := min(x0+p.kw, w)
				x0 = max(x0, 0)
				best, bi := T(math.Inf(-1)), -1
				for iy := y0; iy < y1; iy++ {
					for ix := x0; ix < x1; ix++ {
						i := base + iy*w + ix
						if v := x[i]; v > best || bi < 0 {
							best, bi = v, i
						}
					}
				}
				k := (c*oh+oy)*ow + ox
				y[k], argmax[k] = best, bi
			}
		}
	}
}

// maxPoolGradOp is dx = scatter of dy to the forward pass's winners; inputs
// y (for ordering after the forward pass) and dy.
type maxPoolGradOp struct {
	params
	xShape tensor.Shape
	state  *poolState
	out    opbuf.Buffer
}

func (op *maxPoolGradOp) Arity() int           { return 2 }
func (op *maxPoolGradOp) ReturnsPtr() bool     { return false }
func (op *maxPoolGradOp) CallsExtern() bool    { return false }
func (op *maxPoolGradOp) OverwritesInput() int { return -1 }
func (op *maxPoolGradOp) Hashcode() uint32     { return hashOf(op) }
func (op *maxPoolGradOp) String() string {
	return fmt.Sprintf("qatgo.MaxPool2DGrad{%v x=%v}", op.params, op.xShape)
}
func (op *maxPoolGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "qatgo.MaxPool2DGrad{%d,%d,%d,%d,%d,%d,%v,%p}", op.kh, op.kw, op.padH, op.padW, op.strideH, op.strideW, op.xShape, op.state)
}
func (op *maxPoolGradOp) Type() hm.Type { return fourDType() }

func (op *maxPoolGradOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	return op.xShape.Clone(), nil
}

func (op *maxPoolGradOp) Do(inputs ...G.Value) (G.Value, error) { return op.do(nil, inputs) }

// UsePreallocDo computes the input gradient into prealloc.
func (op *maxPoolGradOp) UsePreallocDo(prealloc G.Value, inputs ...G.Value) (G.Value, error) {
	if prealloc == nil {
		return nil, fmt.Errorf("convop: nil prealloc")
	}
	return op.do(prealloc, inputs)
}

func (op *maxPoolGradOp) do(prealloc G.Value, inputs []G.Value) (G.Value, error) {
	ts, err := tensors(2, inputs)
	if err != nil {
		return nil, err
	}
	dy := ts[1]
	if n := dy.Shape().TotalSize(); n != len(op.state.argmax) {
		return nil, fmt.Errorf("convop: MaxPool2DGrad: dy has %d elements, the forward pass produced %d", n, len(op.state.argmax))
	}
	dx, err := op.out.Output(prealloc, dy.Dtype(), op.xShape, ts...)
	if err != nil {
		return nil, err
	}
	// Windows never cross planes, so goroutines own disjoint ranges of dx.
	planes := op.xShape[0] * op.xShape[1]
	inPlane := op.xShape[2] * op.xShape[3]
	outPlane := len(op.state.argmax) / planes
	parallel(planes, elemWorkers(planes, inPlane), func(_, lo, hi int) {
		in, out := lo*inPlane, lo*outPlane
		am := op.state.argmax[out : hi*outPlane]
		switch dy.Dtype() {
		case tensor.Float32:
			scatter(dy.Data().([]float32)[out:hi*outPlane], dx.Data().([]float32)[in:hi*inPlane], am, in)
		case tensor.Float64:
			scatter(dy.Data().([]float64)[out:hi*outPlane], dx.Data().([]float64)[in:hi*inPlane], am, in)
		}
	})
	return dx, nil
}

// scatter clears dx and adds dy[i] at argmax[i] - base.
func scatter[T float32 | float64](dy, dx []T, argmax []int, base int) {
	clear(dx)
	for i, v := range dy {
		dx[argmax[i]-base] += v
	}
}
