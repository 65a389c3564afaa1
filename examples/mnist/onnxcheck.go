package main

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
)

// ortChunk is how many test images one onnxruntime process runs (bounds its memory; a variable
// so that a test can cross chunk boundaries on few images).
var ortChunk = 2000

// ortCheck exports every model of the run (-onnx): the float model to ONNX, each PTQ/QAT model
// to a .qm and to QDQ ONNX, and measures the test accuracy of qatgo's integer runtime on the .qm
// and of onnxruntime (package onnx/ort: node + onnxruntime-node) on the ONNX files, image by image
// on the same float inputs.
type ortCheck struct {
	rt      *ort.Runtime
	out     string
	requant string
	x       []float32 // the test images, (C,H,W) per image (C = 1: also the runtime's HWC)
	y       []int
	n, size int
	dims    []int // per-image ONNX input dims (C,H,W)
	rows    []ortRow
}

// ortRow is one line of the -onnx table.
type ortRow struct {
	bits, method string
	fake         float64 // qatgo's training-side graph (float, or fake-quant)
	qm, ort      float64 // qatgo's integer runtime on the .qm; onnxruntime on the .onnx
	agree        float64 // share of images where the two runtimes' argmax agree
	maxLSB       float64 // largest output difference, in LSB of the output tensor
	quantized    bool
}

func newORTCheck(o options, m *graph.Model, test *mnist.Set) (*ortCheck, error) {
	rt, err := ort.Find()
	if err != nil {
		return nil, fmt.Errorf("-onnx: %w", err)
	}
	if len(m.Input) != 3 || m.Input[0] != 1 {
		return nil, fmt.Errorf("-onnx: model input %v, want one channel (C,H,W)", m.Input)
	}
	c := &ortCheck{rt: rt, out: o.out, requant: o.requant, n: test.Len(), size: test.ImageSize(), dims: m.Input}
	idx := make([]int, c.n)
	for i := range idx {
		idx[i] = i
	}
	c.x = make([]float32, c.n*c.size)
	c.y = make([]int, c.n)
	test.Batch(idx, c.x, c.y)
	return c, nil
}

// runORT runs the ONNX file on all test images in chunks and returns its float outputs.
func (c *ortCheck) runORT(path string) ([]float32, error) {
	var all []float32
	for s := 0; s < c.n; s += ortChunk {
		nb := min(ortChunk, c.n-s)
		res, err := c.rt.Run(path, ort.Input{Data: c.x[s*c.size : (s+nb)*c.size], Dims: append([]int{nb}, c.dims...)}, ort.Options{})
		if err != nil {
			return nil, err
		}
		if res.Float32 == nil {
			return nil, fmt.Errorf("onnxruntime on %s gave %s output, want float32", path, res.Type)
		}
		all = append(all, res.Float32...)
	}
	return all, nil
}

func (c *ortCheck) accuracy(out []float32) float64 {
	k := len(out) / c.n
	correct := 0
	for i := 0; i < c.n; i++ {
		if infer.Argmax(out[i*k:(i+1)*k]) == c.y[i] {
			correct++
		}
	}
	return float64(correct) / float64(c.n)
}

// float writes the float model as ONNX and adds the row of its onnxruntime accuracy beside
// qatgo's (acc).
func (c *ortCheck) float(m *graph.Model, acc float64) error {
	mp, err := onnx.FromModel(m, onnx.WriteOptions{})
	if err != nil {
		return err
	}
	path := filepath.Join(c.out, m.Name+"-float.onnx")
	if err := onnx.WriteFile(path, mp); err != nil {
		return err
	}
	out, err := c.runORT(path)
	if err != nil {
		return err
	}
	c.rows = append(c.rows, ortRow{bits: "fp32", method: "float", fake: acc, ort: c.accuracy(out)})
	return nil
}

// quantized lowers the prepared model to a .qm (requantization rule c.requant) and QDQ ONNX,
// runs both on the test set and adds the row; fake is the fake-quant graph's accuracy.
func (c *ortCheck) quantized(p *qat.Prepared, name, bits, method string, fake float64) error {
	qm, err := export.Lower(p, export.Options{Name: name, Meta: map[string]string{qmodel.MetaRequant: c.requant}})
	if err != nil {
		return err
	}
	if err := qmodel.WriteFile(filepath.Join(c.out, name+".qm"), qm); err != nil {
		return err
	}
	mp, err := onnx.FromQModel(qm)
	if err != nil {
		return err
	}
	path := filepath.Join(c.out, name+".onnx")
	if err := onnx.WriteFile(path, mp); err != nil {
		return err
	}
	md, err := infer.Load(qm)
	if err != nil {
		return err
	}
	s := md.NewSession()
	defer s.Close()
	var want []float32
	const B = 500
	for st := 0; st < c.n; st += B {
		nb := min(B, c.n-st)
		o, err := s.Run(c.x[st*c.size:(st+nb)*c.size], nb)
		if err != nil {
			return err
		}
		want = append(want, o...)
	}
	got, err := c.runORT(path)
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s: onnxruntime gave %d outputs, qatgo %d", name, len(got), len(want))
	}
	// the output's LSB: the scale of the quantized tensor the final Dequantize reads
	var scale float32
	for _, op := range qm.Ops {
		if op.Kind == qmodel.OpDequantize && op.Outputs[0] == qm.Outputs[0] {
			scale = qm.Tensors[op.Inputs[0]].Quant.Scales[0]
		}
	}
	if scale == 0 {
		return fmt.Errorf("%s: the integer model's output is not a Dequantize", name)
	}
	k := len(want) / c.n
	agree, worst := 0, 0.0
	for i := 0; i < c.n; i++ {
		if infer.Argmax(got[i*k:(i+1)*k]) == infer.Argmax(want[i*k:(i+1)*k]) {
			agree++
		}
	}
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/float64(scale))
	}
	c.rows = append(c.rows, ortRow{bits: bits, method: method, fake: fake, qm: c.accuracy(want), ort: c.accuracy(got),
		agree: float64(agree) / float64(c.n), maxLSB: worst, quantized: true})
	return nil
}

// table returns the Markdown table of the rows.
func (c *ortCheck) table(model string) string {
	s := fmt.Sprintf("\n%s on %d test images (requant %s): accuracy of qatgo's graph (float or fake-quant), of qatgo's integer runtime on the .qm and of onnxruntime on the ONNX export\n\n", model, c.n, c.requant)
	s += "| bits | method | qatgo graph | qatgo .qm | onnxruntime | predictions agree | max diff (LSB) |\n|---|---|---|---|---|---|---|\n"
	for _, r := range c.rows {
		if !r.quantized {
			s += fmt.Sprintf("| %s | %s | %.2f%% | - | %.2f%% | - | - |\n", r.bits, r.method, 100*r.fake, 100*r.ort)
			continue
		}
		s += fmt.Sprintf("| %s | %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.3g |\n", r.bits, r.method, 100*r.fake, 100*r.qm, 100*r.ort, 100*r.agree, r.maxLSB)
	}
	return s
}
