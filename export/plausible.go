package export

import (
	"errors"
	"fmt"
	"math"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/quant"
)

// MaxMagnitude bounds the folded weights and biases and the activation ranges CheckPlausible
// accepts. Trained networks stay many orders of magnitude below it (BatchNorm folding of a
// near-constant channel multiplies a weight by a few hundred at most); a value above it comes
// from a diverged run or a damaged checkpoint, and its int8 model computes nothing useful.
const MaxMagnitude = 1e6

// ErrImplausible is wrapped by the errors of CheckPlausible and of Report.Check when the
// fake-quant accuracy collapses against the float accuracy.
var ErrImplausible = errors.New("export: implausible model")

// CheckPlausible checks what can be checked without data before a prepared model is exported:
// every weighted layer's folded weights and biases are finite and at most MaxMagnitude in
// magnitude, and not all zero; every quantized activation site has a non-zero, finite range of at
// most MaxMagnitude (an observer that saw only zeros, or a zeroed range in a checkpoint, gives the
// minimum scale: every value rounds to the zero point). The error names the layer or site and
// wraps ErrImplausible. Like Lower, it observes the folded weights (qat.Prepared.ObserveWeight).
func CheckPlausible(p *qat.Prepared) error {
	if p == nil || p.Model == nil {
		_, err := SiteParams(p) // the error for a missing or non-layer model
		return err
	}
	for _, g := range p.Model.Groups() {
		if !g.Weighted() {
			continue
		}
		f, err := Fold(p.Model, g)
		if err != nil {
			return err
		}
		if err := plausibleValues(f.Weight, "weights", g.Op, true); err != nil {
			return err
		}
		if err := plausibleValues(f.Bias, "bias", g.Op, false); err != nil {
			return err
		}
	}
	sp, err := SiteParams(p)
	if err != nil {
		return err
	}
	for _, s := range p.Sites {
		if s.Kind != graph.SiteActivation {
			continue
		}
		par := sp[s.Name]
		if par.Float {
			continue
		}
		levels := float64(par.Range.Max - par.Range.Min)
		for _, q := range par.Params {
			span := float64(q.Scale) * levels
			switch {
			case !(q.Scale > quant.MinScale):
				return fmt.Errorf("%w: activation site %q has a zero range (scale %g): every value would quantize to the zero point; calibrate or train its observer on real data",
					ErrImplausible, s.Name, q.Scale)
			case math.IsInf(span, 0) || span > MaxMagnitude:
				return fmt.Errorf("%w: activation site %q has a range of %g (scale %g), more than %g: the model diverged or the checkpoint is damaged",
					ErrImplausible, s.Name, span, q.Scale, float64(MaxMagnitude))
			}
		}
	}
	return nil
}

// plausibleValues checks the folded values v of layer op: finite, at most MaxMagnitude, and (when
// nonZero) not all zero.
func plausibleValues(v []float32, what, op string, nonZero bool) error {
	mx := 0.0
	for i, x := range v {
		a := math.Abs(float64(x))
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return fmt.Errorf("%w: layer %q: folded %s element %d is %v", ErrImplausible, op, what, i, x)
		}
		if a > MaxMagnitude {
			return fmt.Errorf("%w: layer %q: folded %s element %d is %g, more than %g in magnitude: the model diverged or the checkpoint is damaged",
				ErrImplausible, op, what, i, x, float64(MaxMagnitude))
		}
		mx = max(mx, a)
	}
	if nonZero && len(v) > 0 && mx == 0 {
		return fmt.Errorf("%w: layer %q: all %d folded %s are zero: the layer outputs a constant", ErrImplausible, op, len(v), what)
	}
	return nil
}

// examples is a Dataset over examples already in memory (NCHW, one after another) and labels.
type examples struct {
	x      []float32
	labels []int
	per    int
}

func (e examples) Len() int { return len(e.labels) }

func (e examples) Batch(idx []int, x []float32, y []int) {
	for b, i := range idx {
		copy(x[b*e.per:(b+1)*e.per], e.x[i*e.per:(i+1)*e.per])
		y[b] = e.labels[i]
	}
}

// floatAccuracy evaluates the float model m (running BatchNorm statistics, no quantization) on n
// examples x with labels.
func floatAccuracy(m *graph.Model, x []float32, labels []int) (float64, error) {
	per := len(x) / max(len(labels), 1)
	acc, _, err := qat.Evaluate(m, nil, examples{x: x, labels: labels, per: per}, min(len(labels), ParityChunk))
	if err != nil {
		return 0, fmt.Errorf("export: float accuracy: %w", err)
	}
	return acc, nil
}
