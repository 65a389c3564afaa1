package lmspec

import (
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// add is the residual Add (TFLite's scheme, qmodel.AddMultipliers):
//
//	a' = Ma((qa - zA) << AddLeftShift),  b' = Mb((qb - zB) << AddLeftShift)
//	out = clamp(zOut + Mout(a' + b'), lo, hi)     (lo, hi: qmodel.ActivationRange of the op)
func add(m *qmodel.Model, op *qmodel.Op, a, b []int8) ([]int8, error) {
	at, bt, ot := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	pa, pb, po := at.Quant.Params(), bt.Quant.Params(), ot.Quant.Params()
	ma, mb, mo, err := qmodel.AddMultipliers(pa.Scale, pb.Scale, po.Scale)
	if err != nil {
		return nil, err
	}
	lo, hi := qmodel.ActivationRange(op.Act, po)
	out := make([]int8, len(a))
	for i := range a {
		x := int64(quant.MultiplyByQuantizedMultiplier((int32(a[i])-pa.ZeroPoint)<<qmodel.AddLeftShift, ma.M0, ma.Shift))
		y := int64(quant.MultiplyByQuantizedMultiplier((int32(b[i])-pb.ZeroPoint)<<qmodel.AddLeftShift, mb.M0, mb.Shift))
		out[i] = int8(quant.Requantize(sat32(x+y), mo, po.ZeroPoint, lo, hi))
	}
	return out, nil
}
