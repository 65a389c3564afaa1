package lmspec

import (
	"fmt"

	"github.com/qatgo/qatgo/qmodel"
)

// embedding: out[t][i] = clamp(zOut + M_row(w[row][i] * g[row][i/G])), row = tokens[t], w the
// table's int8 or int4 level, g the row's integer group scale (1 without group scales), M_row the
// multiplier of sRow/sOut (qmodel.ConvMultipliers with input scale 1).
func embedding(m *qmodel.Model, op *qmodel.Op, tokens []int) ([]int8, error) {
	w, o := &m.Tensors[op.Inputs[1]], &m.Tensors[op.Outputs[0]]
	v, d := w.Shape[0], w.Shape[1]
	lv, err := w.Int8Values()
	if err != nil {
		return nil, err
	}
	var gs []int32
	groups := 1
	if len(op.Inputs) == 3 {
		g := &m.Tensors[op.Inputs[2]]
		if gs, err = g.Int32Values(); err != nil {
			return nil, err
		}
		groups = g.Shape[1]
	}
	mults, err := qmodel.ConvMultipliers(1, w.Quant.Scales, o.Quant.Scales[0], v)
	if err != nil {
		return nil, err
	}
	z := o.Quant.ZeroPoints[0]
	out := make([]int8, len(tokens)*d)
	for t, row := range tokens {
		if row < 0 || row >= v {
			return nil, fmt.Errorf("token %d outside the vocabulary of %d", row, v)
		}
		for i := 0; i < d; i++ {
			x := int64(lv[row*d+i])
			if gs != nil {
				x *= int64(gs[row*groups+i/(d/groups)])
			}
			out[t*d+i] = requant8(sat32(x), mults[row], z)
		}
	}
	return out, nil
}
