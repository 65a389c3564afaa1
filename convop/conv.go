package convop

import (
	"fmt"
	"github.com/qatgo/qatgo/internal/opbuf"
	"hash"
	"hash/fnv"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/fgemm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// params are the hyper-parameters shared by the forward and gradient ops.
type params struct {
	kh, kw           int
	padH, padW       int
	strideH, strideW int
}

func (p params) String() string {
	return fmt.Sprintf("kernel=(%d,%d) pad=(%d,%d) stride=(%d,%d)", p.kh, p.kw, p.padH, p.padW, p.strideH, p.strideW)
}

func (p params) geom(x, w tensor.Shape) geom {
	return newGeom(x[1], x[2], x[3], w[0], p.kh, p.kw, p.padH, p.padW, p.strideH, p.strideW)
}

// Conv2d returns the 2-D convolution of x (N, C, H, W) with the kernel w
// (Cout, C, kh, kw), zero padding pad (nil means {0, 0}) and stride (nil
// means {1, 1}); it is a drop-in replacement for
// gorgonia.Conv2d(x, w, kernelShape, pad, stride, []int{1, 1}) with the
// kernel shape taken from w. It returns an error for shapes that do not
// fit, negative padding or non-positive strides. The output node's value
// is overwritten in place by the machine's next run (see the package doc).
//
// When x is a leaf of the graph (an input such as a batch of images, not
// the output of another op) the gradient with respect to x is not built:
// training never needs it, and for the first layer of a CNN it costs as
// much as the weight gradient. gorgonia.Grad with respect to such an x
// then fails with a "non differentiable" error; use Conv2dDiffInput to get
// it.
func Conv2d(x, w *G.Node, pad, stride []int) (*G.Node, error) {
	return conv2d(x, w, pad, stride, x.Op() != nil)
}

// Conv2dDiffInput is Conv2d with the gradient with respect to x always
// available, also when x is a leaf of the graph (for example to compute
// input saliency or adversarial examples).
func Conv2dDiffInput(x, w *G.Node, pad, stride []int) (*G.Node, error) {
	return conv2d(x, w, pad, stride, true)
}

func conv2d(x, w *G.Node, pad, stride []int, diffInput bool) (*G.Node, error) {
	if pad == nil {
		pad = []int{0, 0}
	}
	if stride == nil {
		stride = []int{1, 1}
	}
	if len(pad) != 2 || len(stride) != 2 {
		return nil, fmt.Errorf("convop: pad and stride need 2 values, got %v and %v", pad, stride)
	}
	if pad[0] < 0 || pad[1] < 0 {
		return nil, fmt.Errorf("convop: negative padding %v", pad)
	}
	if stride[0] <= 0 || stride[1] <= 0 {
		return nil, fmt.Errorf("convop: strides must be positive, got %v", stride)
	}
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 4 || ws.Dims() != 4 {
		return nil, fmt.Errorf("convop: x %v and w %v must both have 4 dimensions", xs, ws)
	}
	if x.Dtype() != w.Dtype() {
		return nil, fmt.Errorf("convop: x is %v, w is %v (both must have the same dtype)", x.Dtype(), w.Dtype())
	}
	if x.Dtype() != tensor.Float32 && x.Dtype() != tensor.Float64 {
		return nil, fmt.Errorf("convop: unsupported dtype %v (want float32 or float64)", x.Dtype())
	}
	if xs[1] != ws[1] {
		return nil, fmt.Errorf("convop: x has %d channels, w expects %d", xs[1], ws[1])
	}
	op := &convOp{params: params{kh: ws[2], kw: ws[3], padH: pad[0], padW: pad[1], strideH: stride[0], strideW: stride[1]}, diffInput: diffInput}
	if _, err := op.InferShape(xs, ws); err != nil {
		return nil, err
	}
	return G.ApplyOp(op, x, w)
}

// hashOf returns the FNV-1a hash of what op writes in WriteHash.
func hashOf(op G.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func fourDType() hm.Type {
	a := hm.TypeVariable('a')
	t := G.TensorType{Dims: 4, Of: a}
	return hm.NewFnType(t, t, t)
}

// convOp is y = conv(x, w); inputs x (N, C, H, W) and w (Cout, C, kh, kw).
// diffInput says whether the op is differentiable with respect to x.
type convOp struct {
	params
	diffInput bool
	out       opbuf.Buffer
}

var (
	_ G.SDOp            = (*convOp)(nil)
	_ G.UsePreallocDoer = (*convOp)(nil)
	_ G.Op              = (*convGradOp)(nil)
	_ G.UsePreallocDoer = (*convGradOp)(nil)
	_ fmt.Stringer      = (*convOp)(nil)
)

func (op *convOp) Arity() int           { return 2 }
func (op *convOp) Type() hm.Type        { return fourDType() }
func (op *convOp) ReturnsPtr() bool     { return false }
func (op *convOp) CallsExtern() bool    { return false }
func (op *convOp) OverwritesInput() int { return -1 }
func (op *convOp) Hashcode() uint32     { return hashOf(op) }
func (op *convOp) String() string {
	return fmt.Sprintf("qatgo.Conv2d{%v diffInput=%v}", op.params, op.diffInput)
}
func (op *convOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "qatgo.Conv2d{%d,%d,%d,%d,%d,%d,%v}", op.kh, op.kw, op.padH, op.padW, op.strideH, op.strideW, op.diffInput)
}

func (op *convOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("convop: Conv2d takes 2 inputs, got %d", len(inputs))
	}
	xs, ok1 := inputs[0].(tensor.Shape)
	ws, ok2 := inputs[1].(tensor.Shape)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("convop: Conv2d expects shapes, got %T and %T", inputs[0], inputs[1])
	}
	if xs.Dims() != 4 || ws.Dims() != 4 || xs[1] != ws[1] || ws[2] != op.kh || ws[3] != op.kw {
		return nil, fmt.Errorf("convop: Conv2d %v: bad shapes x %v, w %v", op.params, xs, ws)
	}
	g := op.geom(xs, ws)
	if g.outH <= 0 || g.outW <= 0 {
		return nil, fmt.Errorf("convop: Conv2d %v: input %v gives an empty output", op.params, xs)
	}
	return tensor.Shape{xs[0], ws[0], g.outH, g.outW}, nil
}

func (op *convOp) Do(inputs ...G.Value) (G.Value, error) { return op.do(nil, inputs) }

// UsePreallocDo computes the convolution into prealloc.
func (op *convOp) UsePreallocDo(prealloc G.Value, inputs ...G.Value) (G.Value, error) {
	if prealloc == nil {
		return nil, fmt.Errorf("convop: nil prealloc")
	}
	return op.do(prealloc, inputs)
}

func (op *convOp) do(prealloc G.Value, inputs []G.Value) (G.Value, error) {
	ts, err := tensors(2, inputs)
	if err != nil {
		return nil, err
	}
	x, w := ts[0], ts[1]
	shp, err := op.InferShape(x.Shape(), w.Shape())
	if err != nil {
		return nil, err
	}
	y, err := op.out.Output(prealloc, x.Dtype(), shp, ts...)
	if err != nil {
		return nil, err
	}
	g := op.geom(x.Shape(), w.Shape())
	n := x.Shape()[0]
	switch x.Dtype() {
	case tensor.Float32:
		forward(&g, n, x.Data().([]float32), w.Data().([]float32), y.Data().([]float32))
	case tensor.Float64:
		forward(&g, n, x.Data().([]float64), w.Data().([]float64), y.Data().([]float64))
	}
	return y, nil
}

// DiffWRT reports that Conv2d is differentiable with respect to w, and
// with respect to x unless x is a graph input (see Conv2d).
func (op *convOp) DiffWRT(inputs int) []bool { return []bool{op.diffInput, true} }

// SymDiff returns the gradient nodes for x and w.
func (op *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("convop: Conv2d SymDiff needs 2 inputs, got %d", len(inputs))
	}
	x, w := inputs[0], inputs[1]
	var dx *G.Node
	if op.diffInput {
		var err error
		if dx, err = G.ApplyOp(&convGradOp{params: op.params, wrt: wrtInput, shape: x.Shape().Clone()}, w, grad); err != nil {
			return nil, err
		}
	}
	dw, err := G.ApplyOp(&convGradOp{params: op.params, wrt: wrtKernel, shape: w.Shape().Clone()}, x, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// gradWRT selects which gradient of Conv2d a convGradOp computes.
type gradWRT bool

const (
	wrtInput  gradWRT = false // dx = col2im(W^T * dy); inputs w and dy
	wrtKernel gradWRT = true  // dw = sum over images of dy * im2col(x)^T; inputs x and dy
)

// convGradOp is one of the two gradients of Conv2d. Its first input is the
// forward input the gradient does not take (w for wrtInput, x for
// wrtKernel), its second dy; shape is the shape of the result (x's or w's).
type convGradOp struct {
	params
	wrt   gradWRT
	shape tensor.Shape
	out   opbuf.Buffer
}

func (op *convGradOp) name() string {
	if op.wrt == wrtKernel {
		return "Conv2dKernelGrad"
	}
	return "Conv2dInputGrad"
}

func (op *convGradOp) Arity() int           { return 2 }
func (op *convGradOp) Type() hm.Type        { return fourDType() }
func (op *convGradOp) ReturnsPtr() bool     { return false }
func (op *convGradOp) CallsExtern() bool    { return false }
func (op *convGradOp) OverwritesInput() int { return -1 }
func (op *convGradOp) Hashcode() uint32     { return hashOf(op) }
func (op *convGradOp) String() string {
	return fmt.Sprintf("qatgo.%s{%v shape=%v}", op.name(), op.params, op.shape)
}
func (op *convGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "qatgo.%s{%d,%d,%d,%d,%d,%d,%v}", op.name(), op.kh, op.kw, op.padH, op.padW, op.strideH, op.strideW, op.shape)
}

func (op *convGradOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}

func (op *convGradOp) Do(inputs ...G.Value) (G.Value, error) { return op.do(nil, inputs) }

// UsePreallocDo computes the gradient into prealloc.
func (op *convGradOp) UsePreallocDo(prealloc G.Value, inputs ...G.Value) (G.Value, error) {
	if prealloc == nil {
		return nil, fmt.Errorf("convop: nil prealloc")
	}
	return op.do(prealloc, inputs)
}

func (op *convGradOp) do(prealloc G.Value, inputs []G.Value) (G.Value, error) {
	ts, err := tensors(2, inputs)
	if err != nil {
		return nil, err
	}
	other, dy := ts[0], ts[1]
	xs, ws := op.shape, other.Shape()
	if op.wrt == wrtKernel {
		xs, ws = other.Shape(), op.shape
	}
	fwd := convOp{params: op.params}
	want, err := fwd.InferShape(xs, ws)
	if err != nil {
		return nil, err
	}
	if !want.Eq(dy.Shape()) {
		return nil, fmt.Errorf("convop: %s: dy is %v, want %v", op.name(), dy.Shape(), want)
	}
	res, err := op.out.Output(prealloc, other.Dtype(), op.shape, ts...)
	if err != nil {
		return nil, err
	}
	g := op.geom(xs, ws)
	switch other.Dtype() {
	case tensor.Float32:
		backward(&g, xs[0], op.wrt, other.Data().([]float32), dy.Data().([]float32), res.Data().([]float32))
	case tensor.Float64:
		backward(&g, xs[0], op.wrt, other.Data().([]float64), dy.Data().([]float64), res.Data().([]float64))
	}
	return res, nil
}

// backward runs inputGrad (other = w) or kernelGrad (other = x) for n images.
func backward[T float32 | float64](g *geom, n int, wrt gradWRT, other, dy, res []T) {
	if wrt == wrtKernel {
		kernelGrad(g, n, other, dy, res)
	} else {
		inputGrad(g, n, other, dy, res)
	}
}

// tensors checks the inputs: count, dense, same float dtype, 4-D; views
// are materialized.
func tensors(arity int, inputs []G.Value) ([]*tensor.Dense, error) {
	out, err := elementwiseInputs(arity, inputs)
	if err != nil {
		return nil, err
	}
	for i, d := range out {
		if d.Shape().Dims() != 4 {
			return nil, fmt.Errorf("convop: input %d has shape %v, want 4 dimensions", i, d.Shape())
		}
	}
	return out, nil
}

// minParallelFlops is the work below which a convolution runs on one
// goroutine.
const minParallelFlops = 1 << 18

// workersFor returns how many goroutines to split n images between, each
// costing flops: 1 when the images are so large that fgemm itself splits
// them, or the whole job is small.
func workersFor(n int, flops float64) int {
	w := min(runtime.GOMAXPROCS(0), n)
	if flops*float64(n) < minParallelFlops || flops >= 1<<22 {
		return 1
	}
	return max(w, 1)
}

// minParallelElems is the size below which an element-wise pass (ReLU,
// max-pool) runs on one goroutine: about 50 us of work.
const minParallelElems = 1 << 16

// elemWorkers returns how many goroutines to split an element-wise pass
// over n units of size elems each between.
func elemWorkers(n, elems int) int {
	if n*elems < minParallelElems {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), n))
}

// parallel runs body(worker, lo, hi) over image ranges [lo, hi) splitting
// n images between workers goroutines.
func parallel(n, workers int, body func(worker, lo, hi int)) {
	if workers <= 1 {
		body(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + workers - 1) / workers
	for wk, lo := 0, 0; lo < n; wk, lo = wk+1, lo+step {
		hi := min(n, lo+step)
		wg.Go(func() { body(wk, lo, hi) })
	}
	wg.Wait()
}

var pool32, pool64 sync.Pool

// scratch returns a pooled buffer of at least n elements.
func scratch[T float32 | float64](n int) *[]T {
	var zero T
	p := &pool64
	if _, ok := any(zero).(float32); ok {
		p = &pool32
	}
	b, _ := p.Get().(*[]T)
	if b == nil || cap(*b) < n {
		s := make([]T, n)
		b = &s
	}
	*b = (*b)[:n]
	return b
}

func release[T float32 | float64](b *[]T) {
	var zero T
	if _, ok := any(zero).(float32); ok {
		pool32.Put(b)
	} else {
		pool64.Put(b)
	}
}

func gemm[T float32 | float64](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch a := any(a).(type) {
	case []float32:
		fgemm.Sgemm(transA, transB, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		fgemm.Dgemm(transA, transB, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// forward computes y_i = W * im2col(x_i) for the n images.
func forward[T float32 | float64](g *geom, n int, x, w, y []T) {
	inSize, outSize := g.c*g.h*g.w, g.cout*g.pixels
	flops := 2 * float64(g.cout) * float64(g.kdim) * float64(g.pixels)
	parallel(n, workersFor(n, flops), func(_, lo, hi int) {
		col := scratch[T](g.kdim * g.pixels)
		defer release(col)
		for i := lo; i < hi; i++ {
			im2col(g, x[i*inSize:(i+1)*inSize], *col)
			gemm(false, false, g.cout, g.pixels, g.kdim, w, g.kdim, *col, g.pixels, 0, y[i*outSize:(i+1)*outSize], g.pixels)
		}
	})
}

// inputGrad computes dx_i = col2im(W^T * dy_i) for the n images.
func inputGrad[T float32 | float64](g *geom, n int, w, dy, dx []T) {
	inSize, outSize := g.c*g.h*g.w, g.cout*g.pixels
	flops := 2 * float64(g.cout) * float64(g.kdim) * float64(g.pixels)
	parallel(n, workersFor(n, flops), func(_, lo, hi int) {
		col := scratch[T](g.kdim * g.pixels)
		defer release(col)
		for i := lo; i < hi; i++ {
			gemm(true, false, g.kdim, g.pixels, g.cout, w, g.kdim, dy[i*outSize:(i+1)*outSize], g.pixels, 0, *col, g.pixels)
			img := dx[i*inSize : (i+1)*inSize]
			clear(img)
			col2im(g, *col, img)
		}
	})
}

// kernelGrad computes dw = sum_i dy_i * im2col(x_i)^T. Each goroutine sums
// its images into its own buffer; the buffers are added at the end.
func kernelGrad[T float32 | float64](g *geom, n int, x, dy, dw []T) {
	inSize, outSize := g.c*g.h*g.w, g.cout*g.pixels
	wSize := g.cout * g.kdim
	flops := 2 * float64(g.cout) * float64(g.kdim) * float64(g.pixels)
	workers := workersFor(n, flops)
	partial := scratch[T](max(0, workers-1) * wSize)
	defer release(partial)
	clear(dw)
	clear(*partial) // a worker may get no images
	parallel(n, workers, func(wk, lo, hi int) {
		dst := dw
		if wk > 0 {
			dst = (*partial)[(wk-1)*wSize : wk*wSize]
		}
		col := scratch[T](g.kdim * g.pixels)
		defer release(col)
		for i := lo; i < hi; i++ {
			im2col(g, x[i*inSize:(i+1)*inSize], *col)
			gemm(false, true, g.cout, g.kdim, g.pixels, dy[i*outSize:(i+1)*outSize], g.pixels, *col, g.pixels, 1, dst, g.kdim)
		}
	})
	for wk := 1; wk < workers; wk++ {
		for j, v := range (*partial)[(wk-1)*wSize : wk*wSize] {
			dw[j] += v
		}
	}
}
