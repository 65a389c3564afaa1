package export

import (
	"fmt"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// localOp is the runtime part of one group, cut out of an exported model as a model of its own
// with an int8 input, so that it can run on the fake-quant graph's input values: its differences
// to the fake-quant output are the group's own, without what earlier layers contributed.
type localOp struct {
	site    string
	input   string // graph layer whose (fake-quant) value feeds the group
	inShape []int  // its training shape
	md      *infer.Model
	sess    *infer.Session
	inP     quant.Params
}

// cutGroup returns the ops of group g (named g.Op or "g.Op/...") as a model from their entry
// tensor to the tensor named g.Op, or nil when the group has no single entry (Add).
func cutGroup(qm *qmodel.Model, g graph.Group) (*qmodel.Model, error) {
	var ops []int
	for i, op := range qm.Ops {
		if op.Name == g.Op || strings.HasPrefix(op.Name, g.Op+"/") {
			ops = append(ops, i)
		}
	}
	if len(ops) == 0 || g.Kind == graph.KindAdd {
		return nil, nil
	}
	sub := &qmodel.Model{Name: qm.Name + "/" + g.Op, Producer: qm.Producer}
	remap := map[int]int{}
	addT := func(t int, asInput bool) int {
		if j, ok := remap[t]; ok {
			return j
		}
		tt := qm.Tensors[t]
		if asInput {
			tt.Data = nil
		}
		sub.Tensors = append(sub.Tensors, tt)
		remap[t] = len(sub.Tensors) - 1
		return remap[t]
	}
	entry := qm.Ops[ops[0]].Inputs[0]
	sub.Inputs = []int{addT(entry, true)}
	for _, i := range ops {
		op := qm.Ops[i]
		op.Inputs = append([]int(nil), op.Inputs...)
		op.Outputs = append([]int(nil), op.Outputs...)
		for k, t := range op.Inputs {
			op.Inputs[k] = addT(t, false)
		}
		for k, t := range op.Outputs {
			op.Outputs[k] = addT(t, false)
		}
		sub.Ops = append(sub.Ops, op)
	}
	exit := qm.TensorByName(g.Op)
	j, ok := remap[exit]
	if exit < 0 || !ok {
		return nil, fmt.Errorf("export: group %q: no output tensor %q among its ops", g.Op, g.Op)
	}
	sub.Outputs = []int{j}
	return sub, nil
}

// localOps prepares the cut-out groups of qm for every requantizing group with one input.
func localOps(m *graph.Model, qm *qmodel.Model) (map[string]*localOp, error) {
	out := map[string]*localOp{}
	for _, g := range m.Groups() {
		if !g.Requantizes() {
			continue
		}
		sub, err := cutGroup(qm, g)
		if err != nil {
			return nil, err
		}
		if sub == nil {
			continue
		}
		md, err := infer.Load(sub)
		if err != nil {
			return nil, fmt.Errorf("export: group %q as a model of its own: %w", g.Op, err)
		}
		in, _, err := md.Int8Params()
		if err != nil {
			return nil, fmt.Errorf("export: group %q: %w", g.Op, err)
		}
		lo := &localOp{site: g.Op + ".out", input: m.Layer(g.Op).Inputs[0], md: md, sess: md.NewSession(), inP: in}
		lo.inShape = m.Input
		if l := m.Layer(lo.input); l != nil {
			lo.inShape = l.OutShape
		}
		out[lo.site] = lo
	}
	return out, nil
}

// run feeds the fake-quant value of the group's input (training layout, first b of chunk
// examples) to the cut-out group and returns its int8 output.
func (lo *localOp) run(v []float32, shape, chw []int, b int) ([]int8, error) {
	if chw != nil {
		shape = chw
	}
	x := toNHWC(v, b, shape)
	q := make([]int8, len(x))
	for i, f := range x {
		q[i] = int8(quant.QuantizeValue(f, lo.inP.Scale, lo.inP.ZeroPoint, -128, 127))
	}
	return lo.sess.RunInt8(q, b)
}
