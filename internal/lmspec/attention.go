package lmspec

import (
	"math"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// attention runs causal attention over one sequence: rows of queries q, keys k and values v at
// positions 0..rows-1.
//
// KV cache (per KV head g, symmetric int8, scales kCache[g] and vCache[g] from the op's inputs):
//
//	kc[t][d] = clamp(Mk_g(k[t][d] - zK), -kMax, kMax),  vc[t][d] = clamp(Mv_g(v[t][d] - zV), -vMax, vMax)
//
// with Mk_g, Mv_g, Mo_g from qmodel.AttentionMultipliers and kMax, vMax the cache range
// (qmodel.Model.AttentionCacheMax). Query row t, query head h, its KV head g = h/(Heads/KVHeads),
// x = q - zQ:
//
//	s_u  = sum_d x[d] * kc[u][d]                for u = 0..t (exact integers)
//	e_u  = exp2Neg(expArg(max_u s_u - s_u, c_g))  (Q20; c_g = qmodel.AttentionExpScale(sQ, kCache[g], HeadDim))
//	o[d] = sum_u e_u * vc[u][d]
//	r[d] = round(o[d] * 2^16 / sum_u e_u)       (ties away from zero; units of 2^-16 of vCache[g])
//	out  = clamp(zOut + Mo_g(r[d]), -128, 127)
func attention(m *qmodel.Model, op *qmodel.Op, rows int, q, k, v []int8) ([]int8, error) {
	qt, kt, vt, ot := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Inputs[2]], &m.Tensors[op.Outputs[0]]
	ks, err := m.Tensors[op.Inputs[3]].Float32Values()
	if err != nil {
		return nil, err
	}
	vs, err := m.Tensors[op.Inputs[4]].Float32Values()
	if err != nil {
		return nil, err
	}
	kMax, vMax, err := m.AttentionCacheMax(op)
	if err != nil {
		return nil, err
	}
	H, KV, hd := op.LM.Heads, op.LM.KVHeads, op.LM.HeadDim
	zQ, zK, zV, zOut := int64(qt.Quant.ZeroPoints[0]), kt.Quant.ZeroPoints[0], vt.Quant.ZeroPoints[0], ot.Quant.ZeroPoints[0]
	mk := make([]quant.Multiplier, KV)
	mv := make([]quant.Multiplier, KV)
	mo := make([]quant.Multiplier, KV)
	c := make([]float64, KV)
	for g := 0; g < KV; g++ {
		if mk[g], mv[g], mo[g], err = qmodel.AttentionMultipliers(kt.Quant.Scales[0], vt.Quant.Scales[0], ks[g], vs[g], ot.Quant.Scales[0]); err != nil {
			return nil, err
		}
		c[g] = qmodel.AttentionExpScale(qt.Quant.Scales[0], ks[g], hd)
	}
	// The cache: [row][KV*hd] levels.
	kvW := KV * hd
	kc := make([]int64, rows*kvW)
	vc := make([]int64, rows*kvW)
	for t := 0; t < rows; t++ {
		for j := 0; j < kvW; j++ {
			g := j / hd
			kc[t*kvW+j] = clampInt(int64(mk[g].Prepare().Apply(int32(k[t*kvW+j])-zK)), -int64(kMax), int64(kMax))
			vc[t*kvW+j] = clampInt(int64(mv[g].Prepare().Apply(int32(v[t*kvW+j])-zV)), -int64(vMax), int64(vMax))
		}
	}
	qW := H * hd
	out := make([]int8, rows*qW)
	for t := 0; t < rows; t++ {
		for h := 0; h < H; h++ {
			g := h / (H / KV)
			x := q[t*qW+h*hd : t*qW+(h+1)*hd]
			scores := make([]int64, t+1)
			mx := int64(math.MinInt64)
			for u := 0; u <= t; u++ {
				var s int64
				for d := 0; d < hd; d++ {
					s += (int64(x[d]) - zQ) * kc[u*kvW+g*hd+d]
				}
				scores[u] = s
				mx = max(mx, s)
			}
			e := make([]int64, t+1)
			var sum int64
			for u, s := range scores {
				e[u] = exp2Neg(expArg(mx-s, c[g]))
				sum += e[u]
			}
			for d := 0; d < hd; d++ {
				var o int64
				for u := 0; u <= t; u++ {
					o += e[u] * vc[u*kvW+g*hd+d]
				}
				// |o| <= 2^20 * 127 * MaxContext < 2^43: o*2^16 fits int64.
				out[t*qW+h*hd+d] = requant8(sat32(roundDiv64(o<<16, sum)), mo[g], zOut)
			}
		}
	}
	return out, nil
}
