package lmspec

import (
	"github.com/qatgo/qatgo/qmodel"
)

// dequantizeInt32 returns the logits: float32(scale[c]) * float32(acc) in float32, scale[c] the
// int32 input's channel scale (the last one for channels beyond the scales given).
func dequantizeInt32(m *qmodel.Model, op *qmodel.Op, acc []int32) []float32 {
	it := &m.Tensors[op.Inputs[0]]
	n := it.NumElements()
	sc := it.Quant.Scales
	out := make([]float32, len(acc))
	for i, a := range acc {
		c := i % n
		out[i] = sc[min(c, len(sc)-1)] * float32(a)
	}
	return out
}

// dequantizeInt8 returns scale * float32(q - z) in float32.
func dequantizeInt8(m *qmodel.Model, op *qmodel.Op, in []int8) []float32 {
	p := m.Tensors[op.Inputs[0]].Quant.Params()
	out := make([]float32, len(in))
	for i, q := range in {
		out[i] = p.Scale * float32(int32(q)-p.ZeroPoint)
	}
	return out
}
