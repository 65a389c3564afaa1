package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/qatgo/qatgo/qmodel"
)

func init() {
	register(&command{
		name:    "inspect",
		args:    "MODEL",
		summary: "print a model's ops, shapes, bit widths, quantization parameters and sizes",
		detail: `The model is fully validated first (checksums, shapes, parameters, op wiring); an invalid
file gives an error naming the problem. Shapes are per sample (the batch dimension is added at run
time). Requantization multipliers are derived from the stored scales; the "shift" column gives the
range of their power-of-two exponents.`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			tensors := fs.Bool("tensors", false, "also list every tensor")
			return func(e *env, args []string) error {
				if err := needArgs(args, "MODEL"); err != nil {
					return err
				}
				return inspect(e, args[0], *tensors)
			}
		},
	})
}

func shapeStr(s []int) string {
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(p, " ") + "]"
}

func tensorStr(t *qmodel.Tensor) string { return t.DType.String() + shapeStr(t.Shape) }

func qparamStr(t *qmodel.Tensor) string {
	q := t.Quant
	if q == nil {
		return "-"
	}
	if q.Axis < 0 {
		return fmt.Sprintf("s=%.4g z=%d", q.Scales[0], q.ZeroPoints[0])
	}
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, s := range q.Scales {
		lo, hi = min(lo, s), max(hi, s)
	}
	return fmt.Sprintf("s=%.3g..%.3g (%d ch, axis %d)", lo, hi, len(q.Scales), q.Axis)
}

func inspect(e *env, path string, listTensors bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	m, err := qmodel.ReadFile(path)
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "model     %s\n", safe(m.Name))
	if m.Producer != "" {
		fmt.Fprintf(w, "producer  %s\n", safe(m.Producer))
	}
	floatBytes, actElems := 0, 0
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.IsConst() {
			floatBytes += 4 * t.NumElements()
		} else {
			actElems += t.NumElements()
		}
	}
	fmt.Fprintf(w, "file      %d bytes, format version %d\n", st.Size(), qmodel.Version)
	ratio := 0.0
	if m.ConstBytes() > 0 {
		ratio = float64(floatBytes) / float64(m.ConstBytes())
	}
	fmt.Fprintf(w, "weights   %d bytes (%d as float32: %.1fx smaller)\n", m.ConstBytes(), floatBytes, ratio)
	fmt.Fprintf(w, "activations %d elements per sample in %d tensors\n", actElems, len(m.Tensors)-countConst(m))
	per := "sample"
	if m.IsLM() {
		per = "token (attention's grow with the position and are not counted)"
	}
	fmt.Fprintf(w, "compute   %d multiply-accumulates per %s\n", modelMACs(m), per)
	work, _ := m.Work()
	workPer := "sample"
	if m.IsLM() {
		workPer = "token at a full context"
	}
	fmt.Fprintf(w, "work      %d units per %s (multiply-accumulates + window reads + elements)", work.Total(), workPer)
	if work.Total() > qmodel.DefaultMaxWork {
		fmt.Fprintf(w, ", over the runtime's default budget of %d: run, eval and bench need -max-work", qmodel.DefaultMaxWork)
	}
	fmt.Fprintln(w)
	for _, i := range m.Inputs {
		fmt.Fprintf(w, "input     %s %s %s\n", safe(m.Tensors[i].Name), tensorStr(&m.Tensors[i]), qparamStr(&m.Tensors[i]))
	}
	for _, i := range m.Outputs {
		fmt.Fprintf(w, "output    %s %s %s\n", safe(m.Tensors[i].Name), tensorStr(&m.Tensors[i]), qparamStr(&m.Tensors[i]))
	}
	if len(m.Labels) > 0 {
		fmt.Fprintf(w, "labels    %s\n", safeList(m.Labels))
	}
	keys := make([]string, 0, len(m.Meta))
	for k := range m.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "meta      %s = %s\n", safe(k), safe(m.Meta[k]))
	}
	if m.IsLM() {
		inspectLM(w, m)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\top\tname\tinput\toutput\toutput qparams\tact\tattributes\tweights\tweight qparams\tshift\tMACs")
	for i := range m.Ops {
		op := &m.Ops[i]
		in, out := &m.Tensors[op.Inputs[0]], &m.Tensors[op.Outputs[0]]
		act, attrs, wts, wq, shift := "-", "-", "-", "-", "-"
		switch op.Kind {
		case qmodel.OpConv2D, qmodel.OpFullyConnected, qmodel.OpMaxPool2D, qmodel.OpAvgPool2D, qmodel.OpAdd:
			act = op.Act.String()
		}
		switch op.Kind {
		case qmodel.OpConv2D:
			wt := &m.Tensors[op.Inputs[1]]
			attrs = fmt.Sprintf("k%dx%d s%d,%d pad %d,%d,%d,%d", wt.Shape[1], wt.Shape[2], op.StrideH, op.StrideW, op.PadTop, op.PadLeft, op.PadBottom, op.PadRight)
			if op.Groups > 1 {
				attrs += fmt.Sprintf(" depthwise g%d", op.Groups)
			}
		case qmodel.OpMaxPool2D, qmodel.OpAvgPool2D:
			attrs = fmt.Sprintf("k%dx%d s%d,%d pad %d,%d,%d,%d", op.KernelH, op.KernelW, op.StrideH, op.StrideW, op.PadTop, op.PadLeft, op.PadBottom, op.PadRight)
		}
		if op.Kind == qmodel.OpConv2D || op.Kind == qmodel.OpFullyConnected {
			wt := &m.Tensors[op.Inputs[1]]
			wts = fmt.Sprintf("%s (%d bit, %d B)", tensorStr(wt), wt.DType.Bits(), len(wt.Data))
			if len(op.Inputs) == 3 {
				wts += " +bias"
			}
			wq = qparamStr(wt)
			mults, err := qmodel.ConvMultipliers(in.Quant.Scales[0], wt.Quant.Scales, out.Quant.Scales[0], wt.Shape[0])
			if err == nil {
				lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
				for _, mu := range mults {
					lo, hi = min(lo, mu.Shift), max(hi, mu.Shift)
				}
				shift = fmt.Sprintf("%d..%d", lo, hi)
			}
		}
		if op.Kind.IsLM() {
			attrs, wts, wq, shift = lmOpColumns(m, op)
		}
		inStr := tensorStr(in)
		if op.Kind == qmodel.OpAdd || op.Kind == qmodel.OpSwiGLU {
			inStr += " + " + tensorStr(&m.Tensors[op.Inputs[1]])
		}
		macs := "-"
		if n := opMACs(m, op); n > 0 {
			macs = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i, op.Kind, safe(op.Name), inStr, tensorStr(out), qparamStr(out), act, attrs, wts, wq, shift, macs)
	}
	tw.Flush()
	if listTensors {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\ttensor\ttype\tkind\tbytes\tqparams")
		for i := range m.Tensors {
			t := &m.Tensors[i]
			kind := "activation"
			if t.IsConst() {
				kind = "constant"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", i, safe(t.Name), tensorStr(t), kind, t.DType.DataSize(t.NumElements()), qparamStr(t))
		}
		tw.Flush()
	}
	return nil
}

// opMACs returns the multiply-accumulates per sample (per token for a language model) of a
// Conv2D, FullyConnected, Linear or LMHead op (0 otherwise).
func opMACs(m *qmodel.Model, op *qmodel.Op) int {
	switch op.Kind {
	case qmodel.OpConv2D, qmodel.OpFullyConnected, qmodel.OpLinear, qmodel.OpLMHead:
	default:
		return 0
	}
	w := &m.Tensors[op.Inputs[1]]
	return m.Tensors[op.Outputs[0]].NumElements() * (w.NumElements() / w.Shape[0])
}

// modelMACs returns the multiply-accumulates per sample of the whole model.
func modelMACs(m *qmodel.Model) int {
	n := 0
	for i := range m.Ops {
		n += opMACs(m, &m.Ops[i])
	}
	return n
}

func countConst(m *qmodel.Model) int {
	n := 0
	for i := range m.Tensors {
		if m.Tensors[i].IsConst() {
			n++
		}
	}
	return n
}
