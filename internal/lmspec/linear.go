package lmspec

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/qmodel"
)

// linearAcc returns the exact accumulators acc[r][n] = sum_k (x[r][k] - zIn) * w[n][k] * g[n][k/G]
// of a Linear or LMHead (g the integer group scale, 1 without group scales); qmodel's bounds keep
// every sum inside int32 (an error otherwise).
func linearAcc(m *qmodel.Model, op *qmodel.Op, rows int, in []int8) (acc []int32, n int, err error) {
	it, w := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]]
	n, k := w.Shape[0], w.Shape[1]
	lv, err := w.Int8Values()
	if err != nil {
		return nil, 0, err
	}
	var gs []int32
	groups := 1
	if len(op.Inputs) == 3 {
		g := &m.Tensors[op.Inputs[2]]
		if gs, err = g.Int32Values(); err != nil {
			return nil, 0, err
		}
		groups = g.Shape[1]
	}
	z := int64(it.Quant.ZeroPoints[0])
	acc = make([]int32, rows*n)
	for r := 0; r < rows; r++ {
		x := in[r*k : (r+1)*k]
		for c := 0; c < n; c++ {
			var s int64
			for j := 0; j < k; j++ {
				p := (int64(x[j]) - z) * int64(lv[c*k+j])
				if gs != nil {
					p *= int64(gs[c*groups+j/(k/groups)])
				}
				s += p
			}
			if s < math.MinInt32 || s > math.MaxInt32 {
				return nil, 0, fmt.Errorf("row %d channel %d: accumulator %d outside int32", r, c, s)
			}
			acc[r*n+c] = int32(s)
		}
	}
	return acc, n, nil
}

// linear: out[r][c] = clamp(zOut + M_c(acc[r][c]), -128, 127), M_c the multiplier of
// sIn*sW[c]/sOut (qmodel.ConvMultipliers).
func linear(m *qmodel.Model, op *qmodel.Op, rows int, in []int8) ([]int8, error) {
	acc, n, err := linearAcc(m, op, rows, in)
	if err != nil {
		return nil, err
	}
	it, w, o := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	mults, err := qmodel.ConvMultipliers(it.Quant.Scales[0], w.Quant.Scales, o.Quant.Scales[0], n)
	if err != nil {
		return nil, err
	}
	out := make([]int8, len(acc))
	for i, a := range acc {
		out[i] = requant8(a, mults[i%n], o.Quant.ZeroPoints[0])
	}
	return out, nil
}

// lmHead returns the int32 accumulators (scales sIn*sW[c], zero point 0).
func lmHead(m *qmodel.Model, op *qmodel.Op, rows int, in []int8) ([]int32, error) {
	acc, _, err := linearAcc(m, op, rows, in)
	return acc, err
}
