package infer

import (
	"math"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
)

// This file holds the float reference: each op computed in float64 on the dequantized values of its
// actual inputs, giving the real-valued output, which is then expressed in output levels
// (y/scale + zeroPoint, clamped to [-128,127], not rounded). The integer result must lie within
// 1 LSB of it.

// realValues returns the real values of tensor t given its raw buffer (int8, uint8 or float32).
func realValues(tt *qmodel.Tensor, i8 []int8, u8 []byte, f32 []float32) []float64 {
	switch tt.DType {
	case qmodel.Int8:
		p := tt.Quant.Params()
		out := make([]float64, len(i8))
		for i, q := range i8 {
			out[i] = float64(p.Scale) * float64(int32(q)-p.ZeroPoint)
		}
		return out
	case qmodel.Uint8:
		p := tt.Quant.Params()
		out := make([]float64, len(u8))
		for i, q := range u8 {
			out[i] = float64(p.Scale) * float64(int32(q)-p.ZeroPoint)
		}
		return out
	}
	out := make([]float64, len(f32))
	for i, v := range f32 {
		out[i] = float64(v)
	}
	return out
}

func applyAct(y float64, act qmodel.Activation) float64 {
	switch act {
	case qmodel.ActReLU:
		return math.Max(y, 0)
	case qmodel.ActReLU6:
		return math.Min(math.Max(y, 0), 6)
	}
	return y
}

// refOp returns the real-valued output of op for a batch, given real inputs x (and x2 for Add).
func refOp(t *testing.T, m *qmodel.Model, op *qmodel.Op, x, x2 []float64, batch int) []float64 {
	in, out := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Outputs[0]]
	nOut := out.NumElements()
	y := make([]float64, nOut*batch)
	switch op.Kind {
	case qmodel.OpQuantize, qmodel.OpDequantize, qmodel.OpReshape:
		copy(y, x)
	case qmodel.OpAdd:
		for i := range y {
			y[i] = applyAct(x[i]+x2[i], op.Act)
		}
	case qmodel.OpSoftmax:
		n := in.Shape[len(in.Shape)-1]
		for r := 0; r < len(x); r += n {
			mx := math.Inf(-1)
			for _, v := range x[r : r+n] {
				mx = math.Max(mx, v)
			}
			s := 0.0
			for _, v := range x[r : r+n] {
				s += math.Exp(v - mx)
			}
			for i, v := range x[r : r+n] {
				y[r+i] = math.Exp(v-mx) / s
			}
		}
	case qmodel.OpFullyConnected:
		w := &m.Tensors[op.Inputs[1]]
		wv, _ := w.Int8Values()
		n, k := w.Shape[0], w.Shape[1]
		var bias []int32
		if len(op.Inputs) == 3 {
			bias, _ = m.Tensors[op.Inputs[2]].Int32Values()
		}
		sIn := float64(in.Quant.Scales[0])
		for b := 0; b < batch; b++ {
			for j := 0; j < n; j++ {
				sw := float64(w.Quant.Scales[min(j, len(w.Quant.Scales)-1)])
				acc := 0.0
				for kk := 0; kk < k; kk++ {
					acc += x[b*k+kk] * sw * float64(wv[j*k+kk])
				}
				if bias != nil {
					acc += sIn * sw * float64(bias[j])
				}
				y[b*n+j] = applyAct(acc, op.Act)
			}
		}
	case qmodel.OpConv2D:
		w := &m.Tensors[op.Inputs[1]]
		wv, _ := w.Int8Values()
		var bias []int32
		if len(op.Inputs) == 3 {
			bias, _ = m.Tensors[op.Inputs[2]].Int32Values()
		}
		h, wd, c := in.Shape[0], in.Shape[1], in.Shape[2]
		oc, kh, kw, wc := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
		oh, ow := out.Shape[0], out.Shape[1]
		sIn := float64(in.Quant.Scales[0])
		zReal := 0.0 // padding reads as the input zero point, i.e. real 0
		for b := 0; b < batch; b++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for o := 0; o < oc; o++ {
						sw := float64(w.Quant.Scales[min(o, len(w.Quant.Scales)-1)])
						acc := 0.0
						for ky := 0; ky < kh; ky++ {
							for kx := 0; kx < kw; kx++ {
								iy, ix := oy*op.StrideH-op.PadTop+ky, ox*op.StrideW-op.PadLeft+kx
								for ci := 0; ci < wc; ci++ {
									ch := ci
									if op.Groups > 1 {
										ch = o // depthwise: output channel o reads input channel o
									}
									v := zReal
									if iy >= 0 && iy < h && ix >= 0 && ix < wd {
										v = x[((b*h+iy)*wd+ix)*c+ch]
									}
									acc += v * sw * float64(wv[((o*kh+ky)*kw+kx)*wc+ci])
								}
							}
						}
						if bias != nil {
							acc += sIn * sw * float64(bias[o])
						}
						y[((b*oh+oy)*ow+ox)*oc+o] = applyAct(acc, op.Act)
					}
				}
			}
		}
	case qmodel.OpMaxPool2D, qmodel.OpAvgPool2D:
		h, wd, c := in.Shape[0], in.Shape[1], in.Shape[2]
		oh, ow := out.Shape[0], out.Shape[1]
		for b := 0; b < batch; b++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for ch := 0; ch < c; ch++ {
						acc, cnt, mx := 0.0, 0, math.Inf(-1)
						for ky := 0; ky < op.KernelH; ky++ {
							for kx := 0; kx < op.KernelW; kx++ {
								iy, ix := oy*op.StrideH-op.PadTop+ky, ox*op.StrideW-op.PadLeft+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								v := x[((b*h+iy)*wd+ix)*c+ch]
								acc += v
								cnt++
								mx = math.Max(mx, v)
							}
						}
						v := mx
						if op.Kind == qmodel.OpAvgPool2D {
							v = acc / float64(cnt)
						}
						y[((b*oh+oy)*ow+ox)*c+ch] = applyAct(v, op.Act)
					}
				}
			}
		}
	default:
		t.Fatalf("no reference for %v", op.Kind)
	}
	return y
}

// toLevels expresses real outputs in the int8 output's levels, unrounded, clamped to [-128,127].
func toLevels(tt *qmodel.Tensor, y []float64) []float64 {
	p := tt.Quant.Params()
	out := make([]float64, len(y))
	for i, v := range y {
		out[i] = math.Min(127, math.Max(-128, v/float64(p.Scale)+float64(p.ZeroPoint)))
	}
	return out
}

// checkOp compares the int8 output got of op with the float reference computed from its inputs.
// It returns the largest difference in LSB and the share of outputs not at a clamp bound.
func checkOp(t *testing.T, m *qmodel.Model, op *qmodel.Op, x, x2 []float64, got []int8, batch int) (maxDiff float64, interior float64) {
	t.Helper()
	out := &m.Tensors[op.Outputs[0]]
	want := toLevels(out, refOp(t, m, op, x, x2, batch))
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", op.Name, len(got), len(want))
	}
	n := 0
	for i, g := range got {
		d := math.Abs(float64(g) - want[i])
		maxDiff = math.Max(maxDiff, d)
		if d > 1 {
			t.Errorf("%s (%v): output %d = %d, float reference %.3f (diff %.3f LSB)", op.Name, op.Kind, i, g, want[i], d)
			if n++; n > 5 {
				t.FailNow()
			}
		}
		if want[i] > -127.5 && want[i] < 126.5 {
			interior++
		}
	}
	return maxDiff, interior / float64(len(got))
}
