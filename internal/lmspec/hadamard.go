package lmspec

import (
	"math/bits"

	"github.com/qatgo/qatgo/qmodel"
)

// hadamard applies the Walsh-Hadamard matrix in natural (Sylvester) order to each block of B
// values of x = q - zIn, exactly: y[i] = sum_j (-1)^popcount(i&j) x[j]; then
// out = clamp(zOut + M(y), -128, 127), M qmodel.HadamardMultiplier (the transform is
// orthonormal after the 1/sqrt(B) the multiplier holds).
func hadamard(m *qmodel.Model, op *qmodel.Op, rows int, in []int8) ([]int8, error) {
	it, ot := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Outputs[0]]
	b := op.LM.Block
	mu, err := qmodel.HadamardMultiplier(it.Quant.Scales[0], ot.Quant.Scales[0], b)
	if err != nil {
		return nil, err
	}
	z := int64(it.Quant.ZeroPoints[0])
	out := make([]int8, len(in))
	for o := 0; o < len(in); o += b {
		for i := 0; i < b; i++ {
			var y int64
			for j := 0; j < b; j++ {
				x := int64(in[o+j]) - z
				if bits.OnesCount(uint(i&j))%2 == 1 {
					x = -x
				}
				y += x
			}
			out[o+i] = requant8(sat32(y), mu, ot.Quant.ZeroPoints[0])
		}
	}
	_ = rows
	return out, nil
}
