package textgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// SamplerOptions configure a Sampler.
type SamplerOptions struct {
	// Temperature divides the logits before the softmax: 0 is greedy (argmax), 1 the model's
	// distribution, larger values flatter ones. Must be finite and >= 0.
	Temperature float64
	// TopK restricts sampling to the TopK tokens with the largest logits (0: the whole
	// vocabulary; a value above the vocabulary size means the whole vocabulary). Must be >= 0.
	TopK int
	// Seed seeds the generator (math/rand/v2 PCG): equal seeds give equal draws.
	Seed uint64
}

// Sampler picks tokens from logits (see the package documentation for the distribution). It is
// not safe for concurrent use. After the first call with a given vocabulary size it does not
// allocate.
type Sampler struct {
	opt   SamplerOptions
	rng   *rand.Rand
	probs []float64
	heap  []int // top-k candidates (a min-heap by rank)
}

// NewSampler returns a sampler, or an error for a negative, NaN or infinite temperature or a
// negative top-k.
func NewSampler(o SamplerOptions) (*Sampler, error) {
	if !(o.Temperature >= 0) || math.IsInf(o.Temperature, 1) {
		return nil, fmt.Errorf("textgen: temperature %v: want a finite value >= 0 (0: greedy)", o.Temperature)
	}
	if o.TopK < 0 {
		return nil, fmt.Errorf("textgen: top-k %d: want >= 0 (0: whole vocabulary)", o.TopK)
	}
	return &Sampler{opt: o, rng: rand.New(rand.NewPCG(o.Seed, 0x7465787467656e))}, nil
}

// Options returns the sampler's options.
func (s *Sampler) Options() SamplerOptions { return s.opt }

// Greedy returns the index of the largest logit, the lowest index on ties; NaN counts as -Inf
// (an all-NaN vector gives 0). It returns -1 for an empty vector.
func Greedy(logits []float32) int {
	best := -1
	for i, x := range logits {
		if best < 0 || x > logits[best] || (logits[best] != logits[best] && x == x) {
			best = i
		}
	}
	return best
}

// errEmpty is returned by Probabilities for an empty logits vector.
var errEmpty = errors.New("textgen: empty logits")

// ranksAbove reports whether token i ranks above token j: a larger logit, or an equal one and a
// lower index. NaN ranks below everything.
func ranksAbove(l []float32, i, j int) bool {
	a, b := l[i], l[j]
	switch {
	case a != a:
		return b != b && i < j
	case b != b:
		return true
	case a != b:
		return a > b
	}
	return i < j
}

// Probabilities writes into dst (grown to len(logits)) the probability the sampler gives each
// token, and returns it: one-hot on the greedy token at temperature 0 or top-k 1, the tempered
// softmax over the top-k set otherwise. It does not draw.
func (s *Sampler) Probabilities(logits []float32, dst []float64) ([]float64, error) {
	if len(logits) == 0 {
		return nil, errEmpty
	}
	dst = grow(dst, len(logits))
	clear(dst)
	k := s.opt.TopK
	if k == 0 || k > len(logits) {
		k = len(logits)
	}
	if s.opt.Temperature == 0 || k == 1 {
		dst[Greedy(logits)] = 1
		return dst, nil
	}
	keep := s.topK(logits, k)
	mx := math.Inf(-1)
	for _, i := range keep {
		if x := float64(logits[i]); x == x {
			mx = max(mx, x)
		}
	}
	if math.IsInf(mx, -1) { // every kept logit is -Inf or NaN: fall back to greedy
		clear(dst)
		dst[Greedy(logits)] = 1
		return dst, nil
	}
	var sum float64
	for _, i := range keep {
		x := float64(logits[i])
		if x != x {
			continue
		}
		p := math.Exp((x - mx) / s.opt.Temperature)
		dst[i] = p
		sum += p
	}
	for _, i := range keep {
		dst[i] /= sum
	}
	return dst, nil
}

// topK returns the indices of the k top-ranked logits (in no particular order); for k equal to
// the vocabulary size, every index.
func (s *Sampler) topK(l []float32, k int) []int {
	h := s.heap[:0]
	if k == len(l) {
		for i := range l {
			h = append(h, i)
		}
		s.heap = h
		return h
	}
	// Min-heap of the k best seen so far: the root is the worst of them.
	less := func(a, b int) bool { return ranksAbove(l, h[b], h[a]) } // a ranks below b
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && less(c+1, c) {
				c++
			}
			if !less(c, i) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := range l {
		if len(h) < k {
			h = append(h, i)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !less(j, p) {
					break
				}
				h[j], h[p] = h[p], h[j]
				j = p
			}
			continue
		}
		if ranksAbove(l, i, h[0]) {
			h[0] = i
			down(0)
		}
	}
	s.heap = h
	return h
}

// Sample returns the next token for the logits: greedy at temperature 0 or top-k 1, else one
// draw from the distribution of Probabilities. It returns -1 for an empty vector.
func (s *Sampler) Sample(logits []float32) int {
	if s.opt.Temperature == 0 || s.opt.TopK == 1 {
		return Greedy(logits)
	}
	p, err := s.Probabilities(logits, s.probs)
	if err != nil {
		return -1
	}
	s.probs = p
	u := s.rng.Float64()
	last := -1
	for i, pi := range p {
		if pi == 0 {
			continue
		}
		last = i
		if u < pi {
			return i
		}
		u -= pi
	}
	return last // rounding left u just above the total
}

func grow(v []float64, n int) []float64 {
	if cap(v) < n {
		return make([]float64, n)
	}
	return v[:n]
}
