package fakequant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/qatgo/qatgo/quant"
)

// LSQInitScale returns the LSQ initial scale of every slice of v (row-major, laid out by l):
// s = 2*mean|v|/sqrt(Qp) (Esser et al. 2020), floored at quant.MinScale. Non-finite data is an error.
func LSQInitScale(v []float64, l Layout, qp int) ([]float32, error) {
	if len(v) != l.Len() {
		return nil, fmt.Errorf("fakequant: LSQInitScale: %d values for a layout of %d", len(v), l.Len())
	}
	if qp < 1 {
		return nil, fmt.Errorf("fakequant: LSQInitScale: Qp %d (want >= 1: Config.Qp())", qp)
	}
	sum := make([]float64, l.Slices())
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: element %d is %v", ErrNonFinite, i, x)
		}
		sum[l.Slice(i)] += math.Abs(x)
	}
	n := float64(l.PerSlice())
	out := make([]float32, len(sum))
	for k, s := range sum {
		out[k] = float32(2 * (s / n) / math.Sqrt(float64(qp)))
		if !(out[k] >= quant.MinScale) {
			out[k] = quant.MinScale
		}
	}
	return out, nil
}

// MinMaxObserver tracks per-slice minima and maxima over batches: the running min/max with
// Momentum 0, an exponential moving average (PyTorch's MovingAverageMinMaxObserver) with Momentum m
// in (0, 1]: lo <- lo + m*(batchLo - lo). The first batch sets the range. Frozen, it ignores data.
type MinMaxObserver struct {
	// Layout says which elements share a slice (one min/max per slice).
	Layout Layout
	// Momentum is the EMA factor: 0 keeps the running min/max, m in (0, 1] averages.
	Momentum float64
	lo, hi   []float64
	seen     bool
	frozen   bool
}

// NewMinMaxObserver returns an observer for tensors with layout l.
func NewMinMaxObserver(l Layout, momentum float64) *MinMaxObserver {
	return &MinMaxObserver{Layout: l, Momentum: momentum}
}

// Observe updates the range from one batch (len(v) == Layout.Len()). Non-finite data is rejected
// and leaves the state unchanged.
func (o *MinMaxObserver) Observe(v []float64) error {
	if o.frozen {
		return nil
	}
	if len(v) != o.Layout.Len() {
		return fmt.Errorf("fakequant: MinMaxObserver: %d values for a layout of %d", len(v), o.Layout.Len())
	}
	k := o.Layout.Slices()
	blo, bhi := make([]float64, k), make([]float64, k)
	for i := range blo {
		blo[i], bhi[i] = math.Inf(1), math.Inf(-1)
	}
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: element %d is %v", ErrNonFinite, i, x)
		}
		s := o.Layout.Slice(i)
		blo[s] = min(blo[s], x)
		bhi[s] = max(bhi[s], x)
	}
	if !o.seen {
		o.lo, o.hi, o.seen = blo, bhi, true
		return nil
	}
	for i := range blo {
		if o.Momentum == 0 {
			o.lo[i] = min(o.lo[i], blo[i])
			o.hi[i] = max(o.hi[i], bhi[i])
		} else {
			o.lo[i] += o.Momentum * (blo[i] - o.lo[i])
			o.hi[i] += o.Momentum * (bhi[i] - o.hi[i])
		}
	}
	return nil
}

// Range returns copies of the per-slice range, or ErrNotCalibrated before any data.
func (o *MinMaxObserver) Range() (lo, hi []float64, err error) {
	if !o.seen {
		return nil, nil, ErrNotCalibrated
	}
	return slices.Clone(o.lo), slices.Clone(o.hi), nil
}

// Freeze stops updates; Unfreeze resumes them.
func (o *MinMaxObserver) Freeze() { o.frozen = true }

// Unfreeze resumes updates.
func (o *MinMaxObserver) Unfreeze() { o.frozen = false }

// Frozen reports whether updates are stopped.
func (o *MinMaxObserver) Frozen() bool { return o.frozen }

// sampler keeps a uniform reservoir sample of at most max values per slice (Vitter's algorithm R,
// deterministic seed), so percentile and MSE statistics work on bounded memory.
type sampler struct {
	layout Layout
	max    int
	seen   []int
	data   [][]float64
	rng    *rand.Rand
	frozen bool
}

func newSampler(l Layout, max int) sampler {
	if max <= 0 {
		max = 1 << 16
	}
	return sampler{layout: l, max: max, seen: make([]int, l.Slices()), data: make([][]float64, l.Slices()),
		rng: rand.New(rand.NewPCG(0x9e3779b97f4a7c15, uint64(max)))}
}

func (s *sampler) observe(v []float64) error {
	if s.frozen {
		return nil
	}
	if len(v) != s.layout.Len() {
		return fmt.Errorf("fakequant: observer: %d values for a layout of %d", len(v), s.layout.Len())
	}
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: element %d is %v", ErrNonFinite, i, x)
		}
	}
	for i, x := range v {
		k := s.layout.Slice(i)
		s.seen[k]++
		if len(s.data[k]) < s.max {
			s.data[k] = append(s.data[k], x)
		} else if j := s.rng.IntN(s.seen[k]); j < s.max {
			s.data[k][j] = x
		}
	}
	return nil
}

// PercentileObserver sets each slice's range to the [100-P, P] percentiles of the observed values
// (P = 99.99 clips the outer 0.01% on each side), computed on a reservoir sample of at most
// MaxSamples values per slice (default 65536).
type PercentileObserver struct {
	// P is the upper percentile in (50, 100].
	P float64
	s sampler
}

// NewPercentileObserver returns a percentile observer for layout l.
func NewPercentileObserver(l Layout, p float64, maxSamples int) (*PercentileObserver, error) {
	if !(p > 50 && p <= 100) {
		return nil, fmt.Errorf("fakequant: percentile %v outside (50, 100]", p)
	}
	return &PercentileObserver{P: p, s: newSampler(l, maxSamples)}, nil
}

// Observe adds one batch.
func (o *PercentileObserver) Observe(v []float64) error { return o.s.observe(v) }

// Freeze stops updates.
func (o *PercentileObserver) Freeze() { o.s.frozen = true }

// Unfreeze resumes updates.
func (o *PercentileObserver) Unfreeze() { o.s.frozen = false }

// Range returns the per-slice percentile range (linear interpolation between order statistics).
func (o *PercentileObserver) Range() (lo, hi []float64, err error) {
	k := len(o.s.data)
	lo, hi = make([]float64, k), make([]float64, k)
	for i, d := range o.s.data {
		if len(d) == 0 {
			return nil, nil, ErrNotCalibrated
		}
		sorted := slices.Clone(d)
		slices.Sort(sorted)
		lo[i] = quantile(sorted, 1-o.P/100)
		hi[i] = quantile(sorted, o.P/100)
	}
	return lo, hi, nil
}

// quantile of sorted data at p in [0,1], linear interpolation.
func quantile(sorted []float64, p float64) float64 {
	pos := p * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i] + f*(sorted[i+1]-sorted[i])
}

// MSEObserver chooses each slice's range by searching the clipping ratio r in
// {Steps/Steps, (Steps-1)/Steps, ..., MinRatio} applied to the observed [min, max] that minimises the
// squared fake-quantization error sum (v - FakeQuantizeValue(v))^2 over a reservoir sample, using
// the scheme and bit width of cfg (quant.SymmetricParams or AsymmetricParams for each candidate).
type MSEObserver struct {
	cfg      Config
	Steps    int     // candidates (default 100)
	MinRatio float64 // smallest ratio tried (default 0.2)
	s        sampler
}

// NewMSEObserver returns an MSE-optimal range observer for layout l and the quantization of cfg.
func NewMSEObserver(l Layout, cfg Config, maxSamples int) (*MSEObserver, error) {
	if !quant.ValidBits(cfg.Bits) {
		return nil, fmt.Errorf("%w: bits %d", ErrConfig, cfg.Bits)
	}
	return &MSEObserver{cfg: cfg, Steps: 100, MinRatio: 0.2, s: newSampler(l, maxSamples)}, nil
}

// Observe adds one batch.
func (o *MSEObserver) Observe(v []float64) error { return o.s.observe(v) }

// Freeze stops updates.
func (o *MSEObserver) Freeze() { o.s.frozen = true }

// Unfreeze resumes updates.
func (o *MSEObserver) Unfreeze() { o.s.frozen = false }

// Range returns the per-slice range with the smallest squared error.
func (o *MSEObserver) Range() (lo, hi []float64, err error) {
	r := o.cfg.Range()
	k := len(o.s.data)
	lo, hi = make([]float64, k), make([]float64, k)
	steps := max(o.Steps, 1)
	for i, d := range o.s.data {
		if len(d) == 0 {
			return nil, nil, ErrNotCalibrated
		}
		mn, mx := slices.Min(d), slices.Max(d)
		best := math.Inf(1)
		for j := steps; j >= 1; j-- {
			ratio := float64(j) / float64(steps)
			if ratio < o.MinRatio && j != steps {
				break
			}
			a, b := mn*ratio, mx*ratio
			var p quant.Params
			if o.cfg.Symmetric() {
				p, err = quant.SymmetricParams(a, b, r)
			} else {
				p, err = quant.AsymmetricParams(a, b, r)
			}
			if err != nil {
				return nil, nil, err
			}
			e := 0.0
			for _, v := range d {
				dv := v - quant.FakeQuantizeValue(v, float64(p.Scale), p.ZeroPoint, r.Min, r.Max)
				e += dv * dv
			}
			if e < best {
				best, lo[i], hi[i] = e, a, b
			}
		}
	}
	return lo, hi, nil
}
