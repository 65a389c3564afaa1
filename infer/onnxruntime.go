package infer

import (
	"errors"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// This file runs models whose Meta selects qmodel.RequantOnnxruntime: Conv2D and FullyConnected
// accumulate in int32 like every other path and requantize with quant.Float32Multiplier
// (onnxruntime's float32 arithmetic, computed in integers), Add reads quant.OnnxruntimeAddTable
// and a float Quantize rounds half to even. The convolution here is a plain loop (no packed
// kernels, no fusion): this rule is for bit-exact agreement with onnxruntime, not for speed.

var errNoOnnxruntimeRule = errors.New("this op has no onnxruntime requantization rule (metadata requant=onnxruntime supports Quantize from float32, Conv2D, FullyConnected, Add, MaxPool2D, Reshape and Dequantize)")

// compileOnnxruntime keeps the weights as stored and derives onnxruntime's multipliers.
func (md *Model) compileOnnxruntime(s *step, op *qmodel.Op, wv []int8, bias []int32) error {
	m := md.qm
	in, wt, out := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	n := wt.Shape[0]
	s.ortM = make([]quant.Float32Multiplier, n)
	for c := range s.ortM {
		ws := wt.Quant.Scales[0]
		if len(wt.Quant.Scales) == n {
			ws = wt.Quant.Scales[c]
		}
		var err error
		if s.ortM[c], err = quant.OnnxruntimeMultiplier(params(in).Scale, ws, params(out).Scale); err != nil {
			return err
		}
	}
	s.ortW, s.ortBias, s.groups = wv, bias, max(1, op.Groups)
	if op.Kind == qmodel.OpConv2D {
		s.cs.InH, s.cs.InW, s.cs.InC, s.cs.OutC = in.Shape[0], in.Shape[1], in.Shape[2], n
		s.cs.KH, s.cs.KW, s.cs.StrideH, s.cs.StrideW = wt.Shape[1], wt.Shape[2], op.StrideH, op.StrideW
		s.cs.PadTop, s.cs.PadLeft, s.cs.PadBottom, s.cs.PadRight = op.PadTop, op.PadLeft, op.PadBottom, op.PadRight
		if err := s.cs.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// ortLinear computes a Conv2D (NHWC, weights [O][KH][KW][I/groups]) or FullyConnected op on nb
// samples: the int32 accumulator bias + sum (x - zx)*w, then onnxruntime's requantization.
func ortLinear(dst, src []int8, nb int, st *step) {
	zx, zy, lo, hi := int32(st.inZero), st.rq.ZeroPoint, st.rq.Min, st.rq.Max
	if st.kind == qmodel.OpFullyConnected {
		n := len(st.ortM)
		k := st.inN
		for b := 0; b < nb; b++ {
			x := src[b*k : (b+1)*k]
			for o := 0; o < n; o++ {
				acc := st.ortBias[o]
				for i, w := range st.ortW[o*k : (o+1)*k] {
					acc += (int32(x[i]) - zx) * int32(w)
				}
				dst[b*n+o] = int8(st.ortM[o].Requantize(acc, zy, lo, hi))
			}
		}
		return
	}
	cs := st.cs
	oh, ow := cs.OutH(), cs.OutW()
	cin, cout := cs.InC, cs.OutC
	ig, og := cin/st.groups, cout/st.groups
	for b := 0; b < nb; b++ {
		x := src[b*st.inN : (b+1)*st.inN]
		y := dst[b*st.outN : (b+1)*st.outN]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for o := 0; o < cout; o++ {
					acc := st.ortBias[o]
					c0 := o / og * ig
					for ky := 0; ky < cs.KH; ky++ {
						iy := oy*cs.StrideH + ky - cs.PadTop
						if iy < 0 || iy >= cs.InH {
							continue
						}
						for kx := 0; kx < cs.KW; kx++ {
							ix := ox*cs.StrideW + kx - cs.PadLeft
							if ix < 0 || ix >= cs.InW {
								continue
							}
							xi := x[(iy*cs.InW+ix)*cin+c0 : (iy*cs.InW+ix)*cin+c0+ig]
							w := st.ortW[((o*cs.KH+ky)*cs.KW+kx)*ig : ((o*cs.KH+ky)*cs.KW+kx+1)*ig]
							for i, v := range xi {
								acc += (int32(v) - zx) * int32(w[i])
							}
						}
					}
					y[(oy*ow+ox)*cout+o] = int8(st.ortM[o].Requantize(acc, zy, lo, hi))
				}
			}
		}
	}
}

// quantizeHalfEven is onnxruntime's QuantizeLinear: x/scale rounded half to even.
func quantizeHalfEven(dst []int8, f []float32, st *step) {
	for i, v := range f {
		dst[i] = int8(quant.QuantizeValueHalfEven(v, st.scale, st.zero, -128, 127))
	}
}
