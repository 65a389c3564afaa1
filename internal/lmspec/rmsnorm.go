package lmspec

import (
	"math"
	"math/big"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// rmsNorm, per row of D input levels q with x = q - zIn (the input scale sIn cancels except in
// eps), S = qmodel.RMSNormShift(D):
//
//	epsQ = min(round(eps/sIn^2 * 2^32), 2^62)       (float64, ties away from zero)
//	ms   = floor(sum(x^2) * 2^32 / D) + epsQ
//	r    = max(floor(sqrt(ms)), 1)                   (the rms of x in units of 2^-16)
//	t    = sat32(round(x * 2^(16+S) / r))            (ties away from zero)
//	y    = M_i(t), negated when gain[i] < 0          (M_i: qmodel.RMSNormMultiplier of |gain[i]|)
//	out  = clamp(zOut + y, -128, 127)
func rmsNorm(m *qmodel.Model, op *qmodel.Op, rows int, in []int8) ([]int8, error) {
	it, ot := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Outputs[0]]
	gain, err := m.Tensors[op.Inputs[1]].Float32Values()
	if err != nil {
		return nil, err
	}
	d := it.NumElements()
	zIn, zOut := it.Quant.ZeroPoints[0], ot.Quant.ZeroPoints[0]
	sIn := float64(it.Quant.Scales[0])
	epsQ := big.NewInt(int64(math.Min(math.Round(float64(op.LM.Eps)/(sIn*sIn)*(1<<32)), 1<<62)))
	s := qmodel.RMSNormShift(d)
	mults := make([]quant.Multiplier, d)
	for i, g := range gain {
		if mults[i], err = qmodel.RMSNormMultiplier(g, ot.Quant.Scales[0], d); err != nil {
			return nil, err
		}
	}
	out := make([]int8, rows*d)
	for r := 0; r < rows; r++ {
		x := in[r*d : (r+1)*d]
		ss := new(big.Int)
		for _, q := range x {
			v := big.NewInt(int64(q) - int64(zIn))
			ss.Add(ss, v.Mul(v, v))
		}
		ms := new(big.Int).Lsh(ss, 32)
		ms.Quo(ms, big.NewInt(int64(d)))
		ms.Add(ms, epsQ)
		rms := new(big.Int).Sqrt(ms)
		if rms.Sign() == 0 {
			rms.SetInt64(1)
		}
		den := rms.Int64() // at most 2^31: ms < 2^62 + D*2^48
		for i, q := range x {
			t := sat32(roundDiv64((int64(q)-int64(zIn))<<uint(16+s), den)) // |x'| * 2^(16+S) < 2^55
			y := int64(mults[i].Prepare().Apply(t))
			if gain[i] < 0 {
				y = -y
			}
			out[r*d+i] = int8(clampInt(y+int64(zOut), math.MinInt8, math.MaxInt8))
		}
	}
	return out, nil
}

// clampBig returns v as an int64, saturated.
func clampBig(v *big.Int) int64 {
	if v.IsInt64() {
		return v.Int64()
	}
	if v.Sign() < 0 {
		return math.MinInt64
	}
	return math.MaxInt64
}
