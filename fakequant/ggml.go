package fakequant

import (
	"errors"
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/internal/opbuf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GGMLFormat names a llama.cpp (ggml) rounding that GGMLFakeQuant reproduces.
type GGMLFormat int

// The llama.cpp roundings. Blocks run along the last axis (a weight [Out, In] is quantized along
// its input dimension, like ggml's rows), which must be a multiple of 32 for the block formats.
const (
	// GGMLWeightQ8_0 is the Q8_0 weight format: per block of 32, d = amax/127 stored as fp16,
	// q = round(x/d) with ties away from zero (llama.cpp's quantize_row_q8_0_ref), value fp16(d)*q.
	GGMLWeightQ8_0 GGMLFormat = iota
	// GGMLWeightQ4_0 is the Q4_0 weight format: per block of 32, d = max/-8 (max: the value of
	// largest magnitude, with its sign) stored as fp16, n = min(15, trunc(x/d + 8.5)), value
	// fp16(d)*(n-8) (quantize_row_q4_0_ref).
	GGMLWeightQ4_0
	// GGMLActQ8_0 is how llama.cpp's CPU backend quantizes the input of a matmul with Q8_0 or
	// Q4_0 weights, at run time: per block of 32, q = roundeven(x*127/amax), value fp16(amax/127)*q.
	GGMLActQ8_0
	// GGMLF16 rounds every value to IEEE half precision: F16 weights, and the input of a matmul
	// with F16 weights (ggml converts it to F16 first).
	GGMLF16
)

var ggmlFormatNames = [...]string{"weight-q8_0", "weight-q4_0", "act-q8_0", "f16"}

// String names the format.
func (f GGMLFormat) String() string {
	if int(f) < len(ggmlFormatNames) {
		return ggmlFormatNames[f]
	}
	return fmt.Sprintf("GGMLFormat(%d)", int(f))
}

// GGMLFakeQuant returns x rounded as llama.cpp rounds format f (quantize, then dequantize, in
// float32 exactly as ggml does: the values equal gguf.Dequantize(gguf.Quantize(x)) for the weight
// formats), with the straight-through estimator as gradient (identity: the block scales follow
// the values, so nothing is clipped). A float64 x is rounded through float32.
func GGMLFakeQuant(x *G.Node, f GGMLFormat) (*G.Node, error) {
	s := x.Shape()
	if s.Dims() < 1 || f < 0 || int(f) >= len(ggmlFormatNames) {
		return nil, fmt.Errorf("fakequant: GGMLFakeQuant %v on shape %v", f, s)
	}
	if f != GGMLF16 && s[s.Dims()-1]%gguf.QK != 0 {
		return nil, fmt.Errorf("fakequant: GGMLFakeQuant %v needs a last axis that is a multiple of %d, got shape %v", f, gguf.QK, s)
	}
	return G.ApplyOp(&ggmlOp{format: f, dims: s.Dims()}, x)
}

// ggmlOp is the forward of GGMLFakeQuant.
type ggmlOp struct {
	format GGMLFormat
	dims   int
	out    opbuf.Buffer
}

var (
	_ G.SDOp            = (*ggmlOp)(nil)
	_ G.UsePreallocDoer = (*ggmlOp)(nil)
)

func (op *ggmlOp) Arity() int { return 1 }
func (op *ggmlOp) Type() hm.Type {
	t := G.TensorType{Dims: op.dims, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (op *ggmlOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if len(in) != 1 {
		return nil, errors.New("fakequant: GGMLFakeQuant: one input expected")
	}
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("fakequant: GGMLFakeQuant: input shape %v", in[0])
	}
	return s.Clone(), nil
}
func (op *ggmlOp) Do(vals ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, vals...) }
func (op *ggmlOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, errors.New("fakequant: GGMLFakeQuant: one input expected")
	}
	x, ok := vals[0].(*tensor.Dense)
	if !ok || x.IsView() {
		return nil, fmt.Errorf("fakequant: GGMLFakeQuant: input %T is not a dense tensor", vals[0])
	}
	y, err := op.out.Output(prealloc, x.Dtype(), x.Shape(), x)
	if err != nil {
		return nil, fmt.Errorf("fakequant: %v: %w", op, err)
	}
	switch x.Dtype() {
	case tensor.Float32:
		ggmlRound(op.format, x.Float32s(), y.Float32s())
	case tensor.Float64:
		xs, ys := x.Float64s(), y.Float64s()
		tmp := make([]float32, len(xs))
		for i, v := range xs {
			tmp[i] = float32(v)
		}
		ggmlRound(op.format, tmp, tmp)
		for i, v := range tmp {
			ys[i] = float64(v)
		}
	default:
		return nil, fmt.Errorf("fakequant: GGMLFakeQuant: dtype %v", x.Dtype())
	}
	return y, nil
}

// ggmlRound writes the rounded x to y (which may be x), block by block.
func ggmlRound(f GGMLFormat, x, y []float32) {
	if f == GGMLF16 {
		for i, v := range x {
			y[i] = gguf.RoundF16(v)
		}
		return
	}
	var q [gguf.QK]int8
	var n [gguf.QK]uint8
	for b := 0; b+gguf.QK <= len(x); b += gguf.QK {
		xs, ys := x[b:b+gguf.QK], y[b:b+gguf.QK]
		switch f {
		case GGMLWeightQ8_0, GGMLActQ8_0:
			var d uint16
			if f == GGMLWeightQ8_0 {
				d = gguf.QuantizeQ8_0Block(xs, &q)
			} else {
				d = gguf.QuantizeActQ8_0Block(xs, &q)
			}
			s := gguf.F16ToFloat32(d)
			for j := range ys {
				ys[j] = s * float32(q[j])
			}
		case GGMLWeightQ4_0:
			s := gguf.F16ToFloat32(gguf.QuantizeQ4_0Block(xs, &n))
			for j := range ys {
				ys[j] = s * float32(int(n[j])-8)
			}
		}
	}
}

func (op *ggmlOp) ReturnsPtr() bool     { return false }
func (op *ggmlOp) CallsExtern() bool    { return false }
func (op *ggmlOp) OverwritesInput() int { return -1 }
func (op *ggmlOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.GGML{%v dims=%d}", op.format, op.dims)
}
func (op *ggmlOp) Hashcode() uint32     { return hashOf(op) }
func (op *ggmlOp) String() string       { return "GGMLFakeQuant{" + op.format.String() + "}" }
func (op *ggmlOp) DiffWRT(n int) []bool { return []bool{true} }

// SymDiff is the straight-through estimator: the gradient passes unchanged.
func (op *ggmlOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad}, nil
}

// learnedScale is the forward scale of an LSQ slice with log-scale t: scaleFromLog, rounded to
// half precision with ScaleF16 (kept within [quant.MinScale, the largest half], both
// representable).
func (c Config) learnedScale(t float64) float32 {
	s := scaleFromLog(t)
	if c.ScaleF16 {
		s = gguf.RoundF16(min(s, 65504))
	}
	return s
}
