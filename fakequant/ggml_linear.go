package fakequant

import (
	"errors"
	"fmt"
	"hash"
	"math"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GGMLLinear returns x W^T for x [N, In] and W [Out, In] summed in the order of llama.cpp's x86
// CPU backend (its AVX2 and AVX-512 builds) for a matmul with weights of format f (GGMLWeightQ8_0
// or GGMLWeightQ4_0) and an input quantized to Q8_0 (GGMLActQ8_0). x and W must already be
// rounded to those formats (GGMLFakeQuant): then every block of 32 contributes its exact product
// sum d_x*d_w*Σq_x*q_w, and the float32 rounding is llama.cpp's:
//
//   - Q4_0 weights with Out a multiple of 8 are repacked 8 rows at a time (repack.cpp,
//     ggml_gemv/gemm_q4_0_8x8_q8_0): one float32 accumulator per output, acc = fma(Σq_x*q_w,
//     d_w*d_x, acc), block after block.
//   - Q8_0 weights, and Q4_0 weights with other Out (ggml_vec_dot_q8_0_q8_0 / q4_0_q8_0 and
//     llamafile's tinyBLAS_Q0): eight float32 lanes, lane l accumulating with fma the integer sum
//     of elements 4l..4l+3 of every block, then the lanes summed as (l0+l4, l1+l5, l2+l6, l3+l7),
//     then (0+2, 1+3), then (0+1) (hsum_float_8).
//
// A plain float matmul of the same rounded values differs from llama.cpp by about one float32
// rounding per block; a later Q8_0 rounding of a value that lands within that distance of a
// rounding boundary then goes the other way in llama.cpp. The gradient is that of x W^T
// (straight-through, as for GGMLFakeQuant).
func GGMLLinear(x, w *G.Node, f GGMLFormat) (*G.Node, error) {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 2 || ws.Dims() != 2 || xs[1] != ws[1] {
		return nil, fmt.Errorf("fakequant: GGMLLinear needs x [N,In] and W [Out,In], got %v and %v", xs, ws)
	}
	if f != GGMLWeightQ8_0 && f != GGMLWeightQ4_0 {
		return nil, fmt.Errorf("fakequant: GGMLLinear sums %v weights like llama.cpp only for %v and %v", f, GGMLWeightQ8_0, GGMLWeightQ4_0)
	}
	if xs[1]%gguf.QK != 0 {
		return nil, fmt.Errorf("fakequant: GGMLLinear needs an input width that is a multiple of %d, got %d", gguf.QK, xs[1])
	}
	if x.Dtype() != w.Dtype() {
		return nil, fmt.Errorf("fakequant: GGMLLinear: x is %v and W is %v", x.Dtype(), w.Dtype())
	}
	return G.ApplyOp(&ggmlLinearOp{format: f}, x, w)
}

// ggmlLinearOp is the forward of GGMLLinear.
type ggmlLinearOp struct {
	format GGMLFormat
	out    opbuf.Buffer
}

var _ G.SDOp = (*ggmlLinearOp)(nil)

func (op *ggmlLinearOp) Arity() int { return 2 }
func (op *ggmlLinearOp) Type() hm.Type {
	t := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t)
}
func (op *ggmlLinearOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if len(in) != 2 {
		return nil, errors.New("fakequant: GGMLLinear: two inputs expected")
	}
	xs, ok1 := in[0].(tensor.Shape)
	ws, ok2 := in[1].(tensor.Shape)
	if !ok1 || !ok2 || len(xs) != 2 || len(ws) != 2 {
		return nil, fmt.Errorf("fakequant: GGMLLinear: input shapes %v, %v", in[0], in[1])
	}
	return tensor.Shape{xs[0], ws[0]}, nil
}
func (op *ggmlLinearOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 2 {
		return nil, errors.New("fakequant: GGMLLinear: two inputs expected")
	}
	x, ok1 := vals[0].(*tensor.Dense)
	w, ok2 := vals[1].(*tensor.Dense)
	if !ok1 || !ok2 || x.IsView() || w.IsView() {
		return nil, fmt.Errorf("fakequant: GGMLLinear: inputs %T, %T are not dense tensors", vals[0], vals[1])
	}
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[1] || xs[1]%gguf.QK != 0 {
		return nil, fmt.Errorf("fakequant: GGMLLinear: shapes %v, %v", xs, ws)
	}
	y, err := op.out.Output(nil, x.Dtype(), tensor.Shape{xs[0], ws[0]}, x, w)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	n, in, out := xs[0], xs[1], ws[0]
	lanes := op.format == GGMLWeightQ8_0 || out%8 != 0
	switch x.Dtype() {
	case tensor.Float32:
		ggmlMatMul(x.Float32s(), w.Float32s(), y.Float32s(), n, in, out, lanes)
	case tensor.Float64:
		xf, wf := toF32(x.Float64s()), toF32(w.Float64s())
		yf := make([]float32, n*out)
		ggmlMatMul(xf, wf, yf, n, in, out, lanes)
		for i, v := range yf {
			y.Float64s()[i] = float64(v)
		}
	default:
		return nil, fmt.Errorf("fakequant: GGMLLinear: dtype %v", x.Dtype())
	}
	return y, nil
}

func toF32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// ggmlMatMul writes y[i*out+o] = Σ x[i,:] w[o,:] in llama.cpp's order (see GGMLLinear), rows of
// x split over goroutines when the product is large.
func ggmlMatMul(x, w, y []float32, n, in, out int, lanes bool) {
	rows := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr := x[i*in : (i+1)*in]
			for o := 0; o < out; o++ {
				wr := w[o*in : (o+1)*in]
				if lanes {
					y[i*out+o] = ggmlDotLanes(xr, wr)
				} else {
					y[i*out+o] = ggmlDotChain(xr, wr)
				}
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers < 2 || n*in*out < 1<<18 {
		rows(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range workers {
		lo, hi := k*n/workers, (k+1)*n/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows(lo, hi)
		}()
	}
	wg.Wait()
}

// ggmlDotChain is the repacked Q4_0 order: acc = fma(block sum, scales, acc), block by block.
// Each block's product sum is exact in float64 (a multiple of d_x*d_w with at most 38
// significant bits), so addRound32 reproduces the single rounding of the fma.
func ggmlDotChain(x, w []float32) float32 {
	var acc float32
	for b := 0; b < len(x); b += gguf.QK {
		var p float64
		for j := b; j < b+gguf.QK; j++ {
			p += float64(x[j]) * float64(w[j])
		}
		acc = addRound32(p, acc)
	}
	return acc
}

// ggmlDotLanes is the order of ggml_vec_dot_q8_0_q8_0 (AVX2) and tinyBLAS_Q0: eight lanes of
// four elements per block, then hsum_float_8.
func ggmlDotLanes(x, w []float32) float32 {
	var acc [8]float32
	for b := 0; b < len(x); b += gguf.QK {
		for l := range acc {
			var p float64
			for j := b + 4*l; j < b+4*l+4; j++ {
				p += float64(x[j]) * float64(w[j])
			}
			acc[l] = addRound32(p, acc[l])
		}
	}
	var h [4]float32
	for l := range h {
		h[l] = acc[l+4] + acc[l]
	}
	return (h[0] + h[2]) + (h[1] + h[3])
}

// addRound32 returns p + a rounded once to float32 (what an fma with an exact product yields):
// the float64 sum s and its rounding error e (TwoSum) decide the one case where rounding s again
// to float32 would be wrong, s exactly halfway between two float32 values.
func addRound32(p float64, a float32) float32 {
	af := float64(a)
	s := p + af
	bb := s - p
	e := (p - (s - bb)) + (af - bb)
	r := float32(s)
	if e == 0 || float64(r) == s || math.IsInf(s, 0) {
		return r
	}
	other := math.Nextafter32(r, float32(math.Copysign(math.Inf(1), s-float64(r))))
	if s != (float64(r)+float64(other))/2 {
		return r
	}
	// A tie after the first rounding: the exact sum lies on the side of e.
	if (e > 0) == (float64(other) > float64(r)) {
		return other
	}
	return r
}

func (op *ggmlLinearOp) ReturnsPtr() bool     { return false }
func (op *ggmlLinearOp) CallsExtern() bool    { return false }
func (op *ggmlLinearOp) OverwritesInput() int { return -1 }
func (op *ggmlLinearOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.GGMLLinear{%v}", op.format)
}
func (op *ggmlLinearOp) Hashcode() uint32     { return hashOf(op) }
func (op *ggmlLinearOp) String() string       { return "GGMLLinear{" + op.format.String() + "}" }
func (op *ggmlLinearOp) DiffWRT(n int) []bool { return []bool{true, true} }

// SymDiff is the gradient of x W^T: dx = g W, dW = g^T x.
func (op *ggmlLinearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 2 {
		return nil, errors.New("fakequant: GGMLLinear: two inputs expected")
	}
	dx, err := G.Mul(grad, inputs[1])
	if err != nil {
		return nil, err
	}
	gt, err := G.Transpose(grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.Mul(gt, inputs[0])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}
