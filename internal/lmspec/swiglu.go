package lmspec

import (
	"github.com/qatgo/qatgo/qmodel"
)

// swiGLU: out = clamp(zOut + M(T[gate+128] * (up - zUp)), -128, 127), T the SiLU table of the
// gate's quantization (qmodel.SiLUTable) and M qmodel.SwiGLUMultiplier.
func swiGLU(m *qmodel.Model, op *qmodel.Op, gate, up []int8) ([]int8, error) {
	gt, ut, ot := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	tab, _ := qmodel.SiLUTable(gt.Quant.Params())
	mu, err := qmodel.SwiGLUMultiplier(gt.Quant.Params(), ut.Quant.Scales[0], ot.Quant.Scales[0])
	if err != nil {
		return nil, err
	}
	zUp := int64(ut.Quant.ZeroPoints[0])
	out := make([]int8, len(gate))
	for i := range gate {
		p := int64(tab[int(gate[i])+128]) * (int64(up[i]) - zUp)
		out[i] = requant8(sat32(p), mu, ot.Quant.ZeroPoints[0])
	}
	return out, nil
}
