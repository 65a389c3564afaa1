package export

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
)

// LMLayerParity compares one int8 activation of the integer runtime with the same activation of
// the export graph (fake-quantized, converted to integer levels) over all tokens of the batches.
type LMLayerParity struct {
	Name     string  // the runtime tensor (op) name, e.g. "blk0.attn.wq"
	Elements int     // values compared
	MaxLSB   int     // largest difference in integer levels
	Equal    float64 // share of identical levels
	Within1  float64 // share within 1 LSB
	// AloneMaxLSB, AloneEqual and AloneWithin1 measure the op alone in the graph's float
	// arithmetic (LMEval.UseFloatArith): the runtime op runs on the float graph's int8 input
	// levels of that op and its output is compared with the float graph's output levels. They
	// are the differences the float ops make at this op, without those of earlier ops.
	AloneMaxLSB              int
	AloneEqual, AloneWithin1 float64
}

// LMReport is the parity of an exported language model with its fake-quant graph.
type LMReport struct {
	Layers []LMLayerParity // in runtime op order
	Tokens int             // positions compared
	// Agreement is the share of positions whose argmax logits (greedy next token) agree.
	Agreement float64
	// LossGraph and LossRuntime are the mean next-token cross-entropies (nats) of the export graph
	// and of the integer runtime (infer.LMSession) on the same tokens.
	LossGraph, LossRuntime float64
	// MaxLogitDiff is the largest |logit| difference relative to the largest |logit| of the graph.
	MaxLogitDiff float64
	// GroupScaleErr is the largest relative change that snapping float group scales to integer
	// sub-scales made to a weight group's scale (0 without groups; see the package doc).
	GroupScaleErr float64
	// LossFloatArith and AgreementFloatArith are the loss of the graph with its float ops between
	// the quantization points (LMEval.UseFloatArith) and the share of positions where its argmax
	// agrees with the runtime's: what the graph gives without the runtime's arithmetic.
	LossFloatArith, AgreementFloatArith float64
	// Arith names the graph's arithmetic between the quantization points (LMArith.String).
	Arith string
}

// Worst returns the layer with the smallest share within 1 LSB (ties: the largest MaxLSB).
func (r *LMReport) Worst() LMLayerParity {
	var w LMLayerParity
	for i, l := range r.Layers {
		if i == 0 || l.Within1 < w.Within1 || (l.Within1 == w.Within1 && l.MaxLSB > w.MaxLSB) {
			w = l
		}
	}
	return w
}

// Write prints the report as a table.
func (r *LMReport) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\telements\tmax LSB\tequal\twithin 1\tfloat op alone: max LSB\tequal\twithin 1\t")
	for _, l := range r.Layers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.4f\t%d\t%.4f\t%.4f\t\n", l.Name, l.Elements, l.MaxLSB, l.Equal, l.Within1, l.AloneMaxLSB, l.AloneEqual, l.AloneWithin1)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "graph arithmetic: %s\ntokens %d: argmax agreement %.4f, loss graph %.4f runtime %.4f nats (bpb %.4f / %.4f, %+.2f%%), max logit diff %.4f (relative), group scale snap %.1e\n",
		r.Arith, r.Tokens, r.Agreement, r.LossGraph, r.LossRuntime, r.LossGraph/math.Ln2, r.LossRuntime/math.Ln2,
		100*(r.LossRuntime-r.LossGraph)/r.LossGraph, r.MaxLogitDiff, r.GroupScaleErr)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "graph with float ops: loss %.4f nats (bpb %.4f, runtime %+.2f%%), argmax agreement %.4f\n",
		r.LossFloatArith, r.LossFloatArith/math.Ln2, 100*(r.LossRuntime-r.LossFloatArith)/r.LossFloatArith, r.AgreementFloatArith)
	return err
}

// lmProbe is one compared tensor: the runtime name and the graph node holding it.
type lmProbe struct {
	name  string
	node  *G.Node
	heads bool // the node is [B*H, T, hd] (RoPE outputs), not [B*T, D]
	p     quant.Params
	op    int      // the runtime op (index in the model)
	e2e   lsbCount // the graph against the runtime, end to end
	alone lsbCount // the float op alone against the runtime op
}

// lsbCount accumulates differences in integer levels.
type lsbCount struct{ n, max, eq, w1 int }

func (c *lsbCount) add(diff int) {
	diff = max(diff, -diff)
	c.n++
	c.max = max(c.max, diff)
	if diff == 0 {
		c.eq++
	}
	if diff <= 1 {
		c.w1++
	}
}

// shares returns the shares of equal levels and of levels within 1 LSB.
func (c *lsbCount) shares() (eq, w1 float64) {
	if c.n == 0 {
		return 0, 0
	}
	return float64(c.eq) / float64(c.n), float64(c.w1) / float64(c.n)
}

// probes lists the runtime's int8 activations in op order with the graph node of each.
func (e *LMEval) probes(qm *qmodel.Model) ([]*lmProbe, error) {
	var out []*lmProbe
	n := e.g.net
	for i := range qm.Ops {
		op := &qm.Ops[i]
		t := &qm.Tensors[op.Outputs[0]]
		if t.DType != qmodel.Int8 {
			continue
		}
		pr := &lmProbe{name: op.Name, op: i, p: t.Quant.Params(), heads: strings.HasSuffix(op.Name, ".rope_q") || strings.HasSuffix(op.Name, ".rope_k")}
		if site, ok := lmActSite(op.Name, e.lm.Config.OnlineHadamard); ok {
			pr.node = n.Sites[site]
		} else {
			pr.node = n.Points[op.Name]
		}
		if pr.node == nil {
			return nil, fmt.Errorf("export: the LM graph has no node for runtime tensor %q", op.Name)
		}
		out = append(out, pr)
	}
	return out, nil
}

// Parity runs the evaluation graph and the integer runtime of the exported model (a fresh
// infer.LMSession per sequence, the whole sequence as one prefill) on the batches (ids[i],
// targets[i], each Batch*Ctx tokens) and compares every int8 activation, the logits and the
// losses.
func (e *LMEval) Parity(ids, targets [][]int) (*LMReport, error) {
	qm := e.qm
	if len(ids) == 0 || len(ids) != len(targets) {
		return nil, fmt.Errorf("export: LM parity over %d id and %d target batches", len(ids), len(targets))
	}
	rt, err := infer.LoadLM(qm)
	if err != nil {
		return nil, err
	}
	T, B, V := e.lm.Config.Ctx, e.batch, e.lm.Config.Vocab
	if rt.ContextLength() < T || rt.Vocab() != V {
		return nil, fmt.Errorf("export: model context %d / vocabulary %d, the LM has %d / %d", rt.ContextLength(), rt.Vocab(), T, V)
	}
	probes, err := e.probes(qm)
	if err != nil {
		return nil, err
	}
	sess := rt.NewSessionWith(infer.LMSessionOptions{PrefillRows: T})
	rep := &LMReport{GroupScaleErr: e.snap, Arith: e.Arith().String()}
	var agree int
	var lossG, lossR, maxAbs, maxDiff float64
	var rtArgmax []int // the runtime's greedy token at every position
	for bi := range ids {
		lg, err := e.g.run(ids[bi], targets[bi])
		if err != nil {
			return nil, err
		}
		lossG += lg
		logits := floats(e.g.net.Logits.Value())
		vals := make([][]float64, len(probes))
		for i, pr := range probes {
			vals[i] = floats(pr.node.Value())
		}
		for b := 0; b < B; b++ {
			sess.Reset()
			seq := ids[bi][b*T : (b+1)*T]
			err := sess.PrefillEach(seq, func(t int, rl []float32) {
				row := b*T + t
				gl := logits[row*V : (row+1)*V]
				ga, ra := 0, 0
				for j := range rl {
					if gl[j] > gl[ga] {
						ga = j
					}
					if rl[j] > rl[ra] {
						ra = j
					}
					maxAbs = math.Max(maxAbs, math.Abs(gl[j]))
					maxDiff = math.Max(maxDiff, math.Abs(gl[j]-float64(rl[j])))
				}
				if ga == ra {
					agree++
				}
				rtArgmax = append(rtArgmax, ra)
				lossR += crossEntropy(rl, targets[bi][row])
			})
			if err != nil {
				return nil, err
			}
			for i, pr := range probes {
				got, err := sess.Activation(pr.name)
				if err != nil {
					return nil, err
				}
				pr.compare(&pr.e2e, got, vals[i], b, T, e.lm.Config.Heads)
			}
		}
	}
	n := len(ids) * B * T
	rep.Tokens = n
	rep.Agreement = float64(agree) / float64(n)
	rep.LossGraph = lossG / float64(len(ids))
	rep.LossRuntime = lossR / float64(n)
	if maxAbs > 0 {
		rep.MaxLogitDiff = maxDiff / maxAbs
	}
	if e.rt != nil {
		if err := e.floatArithParity(probes, ids, targets, rtArgmax, rep); err != nil {
			return nil, err
		}
	}
	for _, pr := range probes {
		l := LMLayerParity{Name: pr.name, Elements: pr.e2e.n, MaxLSB: pr.e2e.max, AloneMaxLSB: pr.alone.max}
		l.Equal, l.Within1 = pr.e2e.shares()
		l.AloneEqual, l.AloneWithin1 = pr.alone.shares()
		rep.Layers = append(rep.Layers, l)
	}
	return rep, nil
}

// floatArithParity runs the graph with its float ops on the batches: its loss, the agreement of
// its argmax with the runtime's (rtArgmax, every position in order) and, for every probe's op,
// the runtime op alone on the float graph's input levels against the float graph's output.
func (e *LMEval) floatArithParity(probes []*lmProbe, ids, targets [][]int, rtArgmax []int, rep *LMReport) error {
	prev := e.Arith()
	e.SetArith(ArithFloat)
	defer e.SetArith(prev)
	qm, rt := e.qm, e.rt
	T, B, V, H := e.lm.Config.Ctx, e.batch, e.lm.Config.Vocab, e.lm.Config.Heads
	byTensor := map[int]int{} // probe index by its output tensor
	for i, pr := range probes {
		byTensor[qm.Ops[pr.op].Outputs[0]] = i
	}
	var loss float64
	var agree, row int
	var lv [3][]int8
	for bi := range ids {
		l, err := e.g.run(ids[bi], targets[bi])
		if err != nil {
			return err
		}
		loss += l
		logits := floats(e.g.net.Logits.Value())
		for r := 0; r < B*T; r++ {
			gl := logits[r*V : (r+1)*V]
			ga := 0
			for j := range gl {
				if gl[j] > gl[ga] {
					ga = j
				}
			}
			if ga == rtArgmax[row] {
				agree++
			}
			row++
		}
		vals := make([][]float64, len(probes))
		for i, pr := range probes {
			vals[i] = floats(pr.node.Value())
		}
		for b := 0; b < B; b++ {
			for i, pr := range probes {
				op := &qm.Ops[pr.op]
				var toks []int
				var ins [][]int8
				if op.Kind == qmodel.OpEmbedding {
					toks = ids[bi][b*T : (b+1)*T]
				}
				for _, t := range op.Inputs {
					src, ok := byTensor[t]
					if !ok {
						continue // token ids, constants
					}
					k := len(ins)
					lv[k] = rt.toLevels(lv[k], vals[src], probes[src].node.Shape(), b, &qm.Tensors[t])
					ins = append(ins, lv[k])
				}
				res, err := rt.run.Run(op.Name, toks, ins...)
				if err != nil {
					return err
				}
				pr.compare(&pr.alone, res.Int8, vals[i], b, T, H)
			}
		}
	}
	rep.LossFloatArith = loss / float64(len(ids))
	rep.AgreementFloatArith = float64(agree) / float64(len(rtArgmax))
	return nil
}

// compare folds sequence b of the graph values g into c: got is the runtime's [T, D].
func (pr *lmProbe) compare(c *lsbCount, got []int8, g []float64, b, T, heads int) {
	d := len(got) / T
	hd := d / heads
	for t := 0; t < T; t++ {
		for j := 0; j < d; j++ {
			var idx int
			if pr.heads {
				h, x := j/hd, j%hd
				idx = ((b*heads+h)*T+t)*hd + x
			} else {
				idx = (b*T+t)*d + j
			}
			want := quant.QuantizeValue(g[idx], float64(pr.p.Scale), pr.p.ZeroPoint, -128, 127)
			c.add(int(want) - int(got[t*d+j]))
		}
	}
}

// crossEntropy returns -log softmax(logits)[target] in nats.
func crossEntropy(logits []float32, target int) float64 {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	var s float64
	for _, l := range logits {
		s += math.Exp(float64(l) - mx)
	}
	return math.Log(s) + mx - float64(logits[target])
}

// LMThresholds are the limits LMReport.Check enforces.
type LMThresholds struct {
	// MinAgreement is the smallest share of positions whose greedy next tokens agree (0: default,
	// negative: no check).
	MinAgreement float64
	// MaxLossIncrease is the largest relative increase of the runtime's loss over the export
	// graph's (0: default, negative: no check).
	MaxLossIncrease float64
	// MinWithin1 is the smallest share of values within 1 LSB in every layer (0: no check). The
	// layers are compared end to end, so later layers include earlier layers' differences.
	MinWithin1 float64
}

// DefaultLMThresholds: 95% agreement of the greedy next token, loss at most 2% above the graph's.
var DefaultLMThresholds = LMThresholds{MinAgreement: 0.95, MaxLossIncrease: 0.02}

// Check returns an error (wrapping ErrParity) when the report is worse than t, or nil.
func (r *LMReport) Check(t LMThresholds) error {
	if t.MinAgreement == 0 {
		t.MinAgreement = DefaultLMThresholds.MinAgreement
	}
	if t.MaxLossIncrease == 0 {
		t.MaxLossIncrease = DefaultLMThresholds.MaxLossIncrease
	}
	for _, l := range r.Layers {
		if t.MinWithin1 > 0 && l.Within1 < t.MinWithin1 {
			return fmt.Errorf("%w: layer %q: %.4f%% of %d values within 1 LSB, want >= %.4f%% (max diff %d LSB)",
				ErrParity, l.Name, 100*l.Within1, l.Elements, 100*t.MinWithin1, l.MaxLSB)
		}
	}
	if r.Agreement < t.MinAgreement {
		return fmt.Errorf("%w: greedy next tokens agree on %.4f%% of %d positions, want >= %.4f%%", ErrParity, 100*r.Agreement, r.Tokens, 100*t.MinAgreement)
	}
	if inc := (r.LossRuntime - r.LossGraph) / r.LossGraph; t.MaxLossIncrease > 0 && inc > t.MaxLossIncrease {
		return fmt.Errorf("%w: runtime loss %.4f is %.2f%% above the fake-quant graph's %.4f (limit %.2f%%)", ErrParity, r.LossRuntime, 100*inc, r.LossGraph, 100*t.MaxLossIncrease)
	}
	return nil
}
