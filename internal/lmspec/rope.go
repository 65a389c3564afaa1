package lmspec

import (
	"math"

	"github.com/qatgo/qatgo/qmodel"
)

// ropeTable returns the Q30 cos and sin of the angle of pair j at position pos:
// round(cos(a)*2^30), round(sin(a)*2^30) with a = pos * Theta^(-2j/HeadDim), in float64 with
// Go's math package (ties away from zero).
func ropeTable(pos, j, hd int, theta float32) (c, s int64) {
	a := float64(pos) * math.Pow(float64(theta), -2*float64(j)/float64(hd))
	return int64(math.Round(math.Cos(a) * (1 << qmodel.RoPEFracBits))), int64(math.Round(math.Sin(a) * (1 << qmodel.RoPEFracBits)))
}

// rope rotates pair (2j, 2j+1) of every head of row r (position r) with x = q - zIn:
//
//	a = round((x0*cos - x1*sin) / 2^15), b = round((x0*sin + x1*cos) / 2^15)   (ties away from zero)
//	out = clamp(zOut + M(a)), clamp(zOut + M(b))    (M: qmodel.RoPEMultiplier)
func rope(m *qmodel.Model, op *qmodel.Op, rows int, in []int8) ([]int8, error) {
	it, ot := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Outputs[0]]
	mu, err := qmodel.RoPEMultiplier(it.Quant.Scales[0], ot.Quant.Scales[0])
	if err != nil {
		return nil, err
	}
	hd, heads := op.LM.HeadDim, op.LM.Heads
	zIn, zOut := int64(it.Quant.ZeroPoints[0]), ot.Quant.ZeroPoints[0]
	w := it.NumElements()
	sh := uint(qmodel.RoPEFracBits - qmodel.RoPEOutShift)
	out := make([]int8, rows*w)
	for r := 0; r < rows; r++ {
		for h := 0; h < heads; h++ {
			base := r*w + h*hd
			for j := 0; j < hd/2; j++ {
				c, s := ropeTable(r, j, hd, op.LM.Theta)
				x0, x1 := int64(in[base+2*j])-zIn, int64(in[base+2*j+1])-zIn
				a := roundPow2(x0*c-x1*s, sh)
				b := roundPow2(x0*s+x1*c, sh)
				out[base+2*j] = requant8(sat32(a), mu, zOut)
				out[base+2*j+1] = requant8(sat32(b), mu, zOut)
			}
		}
	}
	return out, nil
}
