package onnx

import (
	"fmt"
	"sort"

	"github.com/qatgo/qatgo/onnx/onnxpb"
	"github.com/qatgo/qatgo/qmodel"
	"google.golang.org/protobuf/proto"
)

// FromQModel writes an integer model as a standard QDQ ONNX graph (opset 13, NCHW): every int8
// activation of the integer model is a QuantizeLinear output with its scale and zero point, and
// every op reads DequantizeLinear of its inputs: Conv and Gemm with int8 weights (per output
// channel, axis 0) and int32 biases (scale s_in*s_w[c]), the fused ReLU/ReLU6 as Relu/Clip
// before the output QuantizeLinear, MaxPool, AveragePool, Add, Softmax; Reshape to a vector is
// Transpose to NHWC then Flatten (the integer model flattens in HWC order), a vector to an image
// Reshape to NHWC then Transpose. onnxruntime fuses these patterns into its int8 kernels.
//
// Low-bit models (e.g. W4A4) stay in int8 tensors that hold only their levels, as in the integer
// model: int4 weights are written as int8 initializers with the same values ([-7,7]) and scales,
// and an activation of fewer than 8 bits is an int8 tensor whose producing op clamps it to its
// levels (package export adds the identity convolutions that do this; they become QLinearConv with
// multiplier 1, exact). A fused ReLU/ReLU6 whose clamp is not the whole int8 range (at 4 bits
// ReLU clamps at real 0 = level z > -128) becomes a float Clip between an unclamped
// QuantizeLinear and DequantizeLinear (see qact below), so that the op itself still runs in an
// int8 kernel; a Relu in front of the QuantizeLinear would keep the op in float. Opset-21
// INT4/UINT4 tensors are not used: the same levels in int8 run in onnxruntime's int8 kernels and
// compute the integer model's values exactly.
//
// Activations are written as uint8 with the zero point moved by 128 (q+128, the same real values:
// onnxruntime's own quantizer's default, activations uint8 and weights int8). onnxruntime's CPU
// kernels take uint8 activations; given int8 ones, it converts a QuantizeLinear -> DequantizeLinear
// pair to uint8 only when the QuantizeLinear has a single consumer, and leaves in float every
// Conv and Add that reads or writes an activation with several consumers (the residual blocks'
// inputs), whose float rounding then differs from the integer runtime's.
//
// The integer model's metadata (e.g. qconfig, and the input normalisation input.mean/input.std)
// becomes the ONNX model's metadata_props, sorted by key.
//
// The integer model must have one float32 input of shape [H,W,C] or [K] (a Quantize op) and one
// output; a uint8 input is not supported.
func FromQModel(qm *qmodel.Model) (*onnxpb.ModelProto, error) { return fromQModel(qm, false) }

// FloatFromQModel writes the float32 network that an integer model computes in integers: the
// graph of FromQModel with weights and biases dequantized (w*s_w[c], b*s_in*s_w[c]) and no
// QuantizeLinear/DequantizeLinear, the input float (for a uint8-input model, the real value
// scale*(q-zero_point) of each byte) and the output float. It is the float baseline for timing
// onnxruntime beside qatgo (bench/onnxruntime/compare.js).
func FloatFromQModel(qm *qmodel.Model) (*onnxpb.ModelProto, error) { return fromQModel(qm, true) }

func fromQModel(qm *qmodel.Model, float bool) (*onnxpb.ModelProto, error) {
	if err := qm.Validate(); err != nil {
		return nil, err
	}
	if len(qm.Inputs) != 1 || len(qm.Outputs) != 1 {
		return nil, fmt.Errorf("onnx: model %q has %d inputs and %d outputs (want one each)", qm.Name, len(qm.Inputs), len(qm.Outputs))
	}
	b := newBuilder(qm.Name)
	names := make([]string, len(qm.Tensors)) // ONNX value of each qmodel tensor (quantized: the Q output)
	nchw := func(s []int) []int {
		if len(s) == 3 {
			return []int{s[2], s[0], s[1]}
		}
		return s
	}
	in := &qm.Tensors[qm.Inputs[0]]
	if in.DType != qmodel.Float32 && !(float && in.DType == qmodel.Uint8) {
		return nil, fmt.Errorf("onnx: model %q has a %v input; only float32 input is supported (export without -uint8)", qm.Name, in.DType)
	}
	b.input(InputName, onnxpb.TensorProto_FLOAT, nchw(in.Shape))
	names[qm.Inputs[0]] = InputName
	// ONNX names are unique per qmodel tensor: t<index>_<name>.
	base := func(i int) string { return fmt.Sprintf("t%d_%s", i, qm.Tensors[i].Name) }
	qp := map[int][2]string{}
	qparams := func(i int) (string, string, error) {
		if v, ok := qp[i]; ok {
			return v[0], v[1], nil
		}
		t := &qm.Tensors[i]
		if t.Quant == nil || len(t.Quant.Scales) != 1 || t.DType != qmodel.Int8 {
			return "", "", fmt.Errorf("onnx: tensor %q is not a per-tensor int8 activation", t.Name)
		}
		s := b.scalarFloat(base(i)+".scale", t.Quant.Scales[0])
		// uint8 with the zero point moved by 128: the same real values (see FromQModel).
		zp := b.uint8Init(base(i)+".zero_point", nil, []uint8{uint8(t.Quant.ZeroPoints[0] + 128)})
		qp[i] = [2]string{s, zp}
		return s, zp, nil
	}
	// Every consumer gets its own DequantizeLinear: onnxruntime fuses a DQ -> op -> Q pattern into
	// an int8 kernel only when the DQ has no other consumer.
	ndq := 0
	dq := func(i int) (string, error) {
		if float {
			return names[i], nil
		}
		s, zp, err := qparams(i)
		if err != nil {
			return "", err
		}
		ndq++
		out := fmt.Sprintf("%s.dq%d", base(i), ndq)
		b.node("DequantizeLinear", out, []string{names[i], s, zp}, []string{out})
		return out, nil
	}
	q := func(x string, i int) error {
		if float {
			names[i] = x
			return nil
		}
		s, zp, err := qparams(i)
		if err != nil {
			return err
		}
		names[i] = base(i)
		b.node("QuantizeLinear", names[i], []string{x, s, zp}, []string{names[i]})
		return nil
	}
	act := func(x, name string, a qmodel.Activation) string {
		switch a {
		case qmodel.ActReLU:
			b.node("Relu", name+".relu", []string{x}, []string{name + ".relu"})
			return name + ".relu"
		case qmodel.ActReLU6:
			lo, hi := b.scalarFloat(name+".min", 0), b.scalarFloat(name+".max", 6)
			b.node("Clip", name+".relu6", []string{x, lo, hi}, []string{name + ".relu6"})
			return name + ".relu6"
		}
		return x
	}
	// qact applies the fused activation a of op name to its float output y and quantizes the
	// result to tensor o. When the activation's clamp [lo, hi] (int8 levels) is the whole int8
	// range, onnxruntime removes the Relu/Clip in front of the QuantizeLinear (it only restates
	// QuantizeLinear's saturation) and fuses the op into its int8 kernel. Otherwise (a low-bit
	// activation: ReLU clamps at real 0 = level z > -128; ReLU6 at a level below 127) a Relu/Clip
	// there would keep the op in float; instead the op is quantized unclamped (its int8 kernel
	// saturates at [-128,127]) and a float Clip between DequantizeLinear and QuantizeLinear,
	// bounded by the dequantized levels lo and hi, clamps exactly: DequantizeLinear gives
	// float32(k)*s for level k, and QuantizeLinear maps float32(k)*s back to k for every k in
	// [-128,127] (the relative error of the float32 product and quotient is far below 0.5/255).
	qact := func(y, name string, a qmodel.Activation, o int) error {
		if float || a == qmodel.ActNone {
			return q(act(y, name, a), o)
		}
		t := &qm.Tensors[o]
		if t.Quant == nil || len(t.Quant.Scales) != 1 {
			return fmt.Errorf("onnx: tensor %q is not a per-tensor int8 activation", t.Name)
		}
		lo, hi := qmodel.ActivationRange(a, t.Quant.Params())
		if lo == -128 && hi == 127 {
			return q(act(y, name, a), o)
		}
		sn, zn, err := qparams(o)
		if err != nil {
			return err
		}
		pre, x := base(o)+".unclamped", base(o)+".unclamped.dq"
		b.node("QuantizeLinear", pre, []string{y, sn, zn}, []string{pre})
		b.node("DequantizeLinear", x, []string{pre, sn, zn}, []string{x})
		s, z := t.Quant.Scales[0], t.Quant.ZeroPoints[0]
		mn := b.scalarFloat(name+".clip_min", float32(lo-z)*s)
		mx := b.scalarFloat(name+".clip_max", float32(hi-z)*s)
		b.node("Clip", name+".clip", []string{x, mn, mx}, []string{name + ".clip"})
		return q(name+".clip", o)
	}
	// weight returns DQ(weight) in ONNX layout and DQ(bias) (or "").
	weights := func(op *qmodel.Op, inScale float32) (string, string, error) {
		w := &qm.Tensors[op.Inputs[1]]
		wn := base(op.Inputs[1])
		wv, err := w.Int8Values()
		if err != nil {
			return "", "", err
		}
		if w.Quant == nil || w.Quant.Axis > 0 {
			return "", "", fmt.Errorf("onnx: weight %q is not quantized per tensor or per output channel", w.Name)
		}
		shape := w.Shape
		if len(shape) == 4 { // [O,KH,KW,I] -> [O,I,KH,KW]
			o, kh, kw, ci := shape[0], shape[1], shape[2], shape[3]
			t := make([]int8, len(wv))
			for a := 0; a < o; a++ {
				for y := 0; y < kh; y++ {
					for x := 0; x < kw; x++ {
						for c := 0; c < ci; c++ {
							t[((a*ci+c)*kh+y)*kw+x] = wv[((a*kh+y)*kw+x)*ci+c]
						}
					}
				}
			}
			wv, shape = t, []int{o, ci, kh, kw}
		}
		out := shape[0]
		scales := w.Quant.Scales
		if len(scales) == 1 {
			scales = make([]float32, out)
			for i := range scales {
				scales[i] = w.Quant.Scales[0]
			}
		}
		for _, z := range w.Quant.ZeroPoints {
			if z != 0 {
				return "", "", fmt.Errorf("onnx: weight %q has a nonzero zero point", w.Name)
			}
		}
		var wd string
		if float {
			per := len(wv) / out
			f := make([]float32, len(wv))
			for i, v := range wv {
				f[i] = float32(v) * scales[i/per]
			}
			wd = b.floatInit(wn, shape, f)
		} else {
			wq := b.int8Init(wn, shape, wv)
			ws := b.floatInit(wn+".scale", []int{out}, scales)
			wz := b.int8Init(wn+".zero_point", []int{out}, make([]int8, out))
			wd = wn + ".dq"
			b.node("DequantizeLinear", wd, []string{wq, ws, wz}, []string{wd}, intAttr("axis", 0))
		}
		if len(op.Inputs) < 3 || op.Inputs[2] < 0 {
			return wd, "", nil
		}
		bt := &qm.Tensors[op.Inputs[2]]
		bn := base(op.Inputs[2])
		bv, err := bt.Int32Values()
		if err != nil {
			return "", "", err
		}
		bs := make([]float32, out)
		for i := range bs {
			bs[i] = inScale * scales[i]
			if bt.Quant != nil && len(bt.Quant.Scales) == out {
				bs[i] = bt.Quant.Scales[i]
			}
		}
		if float {
			f := make([]float32, out)
			for i, v := range bv {
				f[i] = float32(float64(v) * float64(bs[i]))
			}
			return wd, b.floatInit(bn, []int{out}, f), nil
		}
		bq := b.int32Init(bn, []int{out}, bv)
		bsn := b.floatInit(bn+".scale", []int{out}, bs)
		bz := b.int32Init(bn+".zero_point", []int{out}, make([]int32, out))
		bd := bn + ".dq"
		b.node("DequantizeLinear", bd, []string{bq, bsn, bz}, []string{bd}, intAttr("axis", 0))
		return wd, bd, nil
	}
	for k := range qm.Ops {
		op := &qm.Ops[k]
		name := fmt.Sprintf("op%d_%s_%s", k, op.Kind, op.Name)
		o := op.Outputs[0]
		switch op.Kind {
		case qmodel.OpQuantize:
			if err := q(names[op.Inputs[0]], o); err != nil {
				return nil, err
			}
		case qmodel.OpDequantize:
			x, err := dq(op.Inputs[0])
			if err != nil {
				return nil, err
			}
			names[o] = x
		case qmodel.OpConv2D, qmodel.OpFullyConnected:
			x, err := dq(op.Inputs[0])
			if err != nil {
				return nil, err
			}
			wd, bd, err := weights(op, qm.Tensors[op.Inputs[0]].Quant.Scales[0])
			if err != nil {
				return nil, err
			}
			ins := []string{x, wd}
			if bd != "" {
				ins = append(ins, bd)
			}
			y := name + ".f"
			if op.Kind == qmodel.OpConv2D {
				b.node("Conv", name, ins, []string{y}, intsAttr("strides", op.StrideH, op.StrideW),
					intsAttr("pads", op.PadTop, op.PadLeft, op.PadBottom, op.PadRight), intAttr("group", max(1, op.Groups)))
			} else {
				b.node("Gemm", name, ins, []string{y}, intAttr("transB", 1))
			}
			if err := qact(y, name, op.Act, o); err != nil {
				return nil, err
			}
		case qmodel.OpMaxPool2D, qmodel.OpAvgPool2D:
			x, err := dq(op.Inputs[0])
			if err != nil {
				return nil, err
			}
			kind := "MaxPool"
			if op.Kind == qmodel.OpAvgPool2D {
				kind = "AveragePool"
			}
			y := name + ".f"
			b.node(kind, name, []string{x}, []string{y}, intsAttr("kernel_shape", op.KernelH, op.KernelW),
				intsAttr("strides", op.StrideH, op.StrideW), intsAttr("pads", op.PadTop, op.PadLeft, op.PadBottom, op.PadRight))
			if err := qact(y, name, op.Act, o); err != nil {
				return nil, err
			}
		case qmodel.OpAdd:
			x, err := dq(op.Inputs[0])
			if err != nil {
				return nil, err
			}
			z, err := dq(op.Inputs[1])
			if err != nil {
				return nil, err
			}
			y := name + ".f"
			b.node("Add", name, []string{x, z}, []string{y})
			if err := qact(y, name, op.Act, o); err != nil {
				return nil, err
			}
		case qmodel.OpReshape:
			src := &qm.Tensors[op.Inputs[0]]
			dst := &qm.Tensors[o]
			if len(dst.Shape) == 3 && len(src.Shape) == 1 {
				// a vector to an image [H,W,C] (HWC order): Reshape to NHWC, Transpose to NCHW.
				// Export writes this for a low-bit activation after a dense layer, whose clamp is a
				// 1x1 convolution of a [1,1,K] image (see package export).
				x, err := dq(op.Inputs[0])
				if err != nil {
					return nil, err
				}
				sh := b.int64Init(name+".shape", []int{4}, []int64{0, int64(dst.Shape[0]), int64(dst.Shape[1]), int64(dst.Shape[2])})
				b.node("Reshape", name+".nhwc", []string{x, sh}, []string{name + ".nhwc"})
				y := name + ".f"
				b.node("Transpose", name, []string{name + ".nhwc"}, []string{y}, intsAttr("perm", 0, 3, 1, 2))
				if err := q(y, o); err != nil {
					return nil, err
				}
				break
			}
			if len(dst.Shape) != 1 {
				return nil, fmt.Errorf("onnx: op %q reshapes %v to %v (only to a vector, or a vector to an image)", name, src.Shape, dst.Shape)
			}
			x, err := dq(op.Inputs[0])
			if err != nil {
				return nil, err
			}
			if len(src.Shape) == 3 {
				b.node("Transpose", name+".nhwc", []string{x}, []string{name + ".nhwc"}, intsAttr("perm", 0, 2, 3, 1))
				x = name + ".nhwc"
			}
			y := name + ".f"
			b.node("Flatten", name, []string{x}, []string{y}, intAttr("axis", 1))
			if err := q(y, o); err != nil {
				return nil, err
			}
		case qmodel.OpSoftmax:
			x, err := dq(op.Inputs[0])
			if err != nil {
				return nil, err
			}
			y := name + ".f"
			b.node("Softmax", name, []string{x}, []string{y}, intAttr("axis", -1))
			if err := q(y, o); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("onnx: op %q of kind %v has no QDQ form", name, op.Kind)
		}
	}
	out := qm.Outputs[0]
	ot := &qm.Tensors[out]
	et := onnxpb.TensorProto_FLOAT
	res := names[out]
	if float {
		et = onnxpb.TensorProto_FLOAT
	} else if ot.DType == qmodel.Int8 { // back to the integer model's int8 levels
		et = onnxpb.TensorProto_INT8
		x, err := dq(out)
		if err != nil {
			return nil, err
		}
		s, _, _ := qparams(out)
		zp := b.int8Init(base(out)+".zero_point_int8", nil, []int8{int8(ot.Quant.ZeroPoints[0])})
		res = base(out) + ".int8"
		b.node("QuantizeLinear", res, []string{x, s, zp}, []string{res})
	}
	b.node("Identity", OutputName, []string{res}, []string{OutputName})
	b.output(OutputName, et, nchw(ot.Shape))
	mp := b.model()
	mp.MetadataProps = metadataProps(qm.Meta)
	return mp, nil
}

// metadataProps returns meta as ONNX metadata_props, sorted by key.
func metadataProps(meta map[string]string) []*onnxpb.StringStringEntryProto {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var props []*onnxpb.StringStringEntryProto
	for _, k := range keys {
		props = append(props, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(meta[k])})
	}
	return props
}
