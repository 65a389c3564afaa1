package textgen

import (
	"errors"
	"fmt"
	"math"

	"github.com/qatgo/qatgo/infer"
)

// GeneratorOptions configure a Generator.
type GeneratorOptions struct {
	// Slide enables the sliding window: when the context is full, the model restarts from the
	// last Keep tokens (see the package documentation). Without it a call that does not fit
	// fails with an error wrapping infer.ErrContextFull before any work.
	Slide bool
	// Keep is the number of tokens a slide keeps (0: half the context length, at least 1).
	// Must be below the context length.
	Keep int
	// Session configures the generator's infer.LMSession.
	Session infer.LMSessionOptions
}

// Generator produces tokens from an LM with a Sampler. It owns one infer.LMSession and is not
// safe for concurrent use. Successive Generate calls continue the same text.
type Generator struct {
	lm      *infer.LM
	s       *infer.LMSession
	smp     *Sampler
	slide   bool
	keep    int
	hist    []int // the tokens in the session's context, in order
	pending []int // the last sampled token, not yet decoded (length 0 or 1)
	logits  []float32
	feed    []int
	slides  int
}

// NewGenerator returns a generator for lm drawing with smp.
func NewGenerator(lm *infer.LM, smp *Sampler, opt GeneratorOptions) (*Generator, error) {
	if lm == nil || smp == nil {
		return nil, errors.New("textgen: NewGenerator needs a model and a sampler")
	}
	ctx := lm.ContextLength()
	keep := opt.Keep
	if keep == 0 {
		keep = max(1, ctx/2)
	}
	if keep < 1 || keep >= ctx && ctx > 1 || keep > ctx {
		return nil, fmt.Errorf("textgen: keep %d: want 1..%d (below the context length %d)", opt.Keep, max(1, ctx-1), ctx)
	}
	return &Generator{lm: lm, s: lm.NewSessionWith(opt.Session), smp: smp, slide: opt.Slide, keep: keep,
		hist: make([]int, 0, ctx)}, nil
}

// Session returns the generator's session (its position is the number of tokens in context).
func (g *Generator) Session() *infer.LMSession { return g.s }

// Slides returns how many times the sliding window restarted the context.
func (g *Generator) Slides() int { return g.slides }

// Reset forgets the text: the next Generate starts from an empty context.
func (g *Generator) Reset() {
	g.s.Reset()
	g.hist, g.pending, g.logits = g.hist[:0], g.pending[:0], g.logits[:0]
}

// Need returns the context positions a Generate call with a prompt of p tokens and n new tokens
// needs on top of what is already in context (the pending last token included), saturating at
// math.MaxInt instead of overflowing for huge n.
func (g *Generator) Need(p, n int) int {
	base := len(g.pending) + p
	if n == 0 {
		return base
	}
	if n-1 > math.MaxInt-base {
		return math.MaxInt
	}
	return base + n - 1
}

// Generate appends prompt to the text, then samples n tokens, calling emit with each as soon as
// it is chosen; an error from emit stops generation and is returned. Tokens must be in
// [0, Vocab). With an empty context, an empty prompt is an error (there are no logits to sample
// from). n == 0 only feeds the prompt. Without Slide, a call needing more than the room left
// (Need) fails with an error wrapping infer.ErrContextFull before any work.
func (g *Generator) Generate(prompt []int, n int, emit func(token int) error) error {
	if n < 0 {
		return fmt.Errorf("textgen: %d tokens to generate: want >= 0", n)
	}
	for i, t := range prompt {
		if t < 0 || t >= g.lm.Vocab() {
			return fmt.Errorf("textgen: prompt token %d at index %d outside the vocabulary [0,%d)", t, i, g.lm.Vocab())
		}
	}
	if len(prompt) == 0 && len(g.pending) == 0 && len(g.logits) == 0 {
		if n == 0 {
			return nil
		}
		return errors.New("textgen: empty prompt and empty context: nothing to predict from")
	}
	if need := g.Need(len(prompt), n); !g.slide && need > g.s.Room() {
		return fmt.Errorf("%w: %d context positions needed (%d in context, %d prompt tokens, %d new tokens), the model holds %d",
			infer.ErrContextFull, need, g.s.Pos(), len(prompt), n, g.lm.ContextLength())
	}
	g.feed = append(append(g.feed[:0], g.pending...), prompt...)
	g.pending = g.pending[:0]
	if len(g.feed) > 0 {
		if err := g.prefill(g.feed); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			if err := g.prefill(g.pending); err != nil {
				return err
			}
			g.pending = g.pending[:0]
		}
		t := g.smp.Sample(g.logits)
		if t < 0 {
			return errors.New("textgen: the model returned no logits")
		}
		g.pending = append(g.pending, t)
		if err := emit(t); err != nil {
			return err
		}
	}
	return nil
}

// prefill feeds toks (sliding the window first when Slide is on and they do not fit) and keeps a
// copy of the last logits.
func (g *Generator) prefill(toks []int) error {
	if len(toks) > g.s.Room() && g.slide {
		// The window is the last keep tokens of hist+toks, built in hist's storage (cap ctx > keep).
		if len(toks) >= g.keep {
			g.hist = append(g.hist[:0], toks[len(toks)-g.keep:]...)
		} else {
			h := min(len(g.hist), g.keep-len(toks))
			n := copy(g.hist, g.hist[len(g.hist)-h:]) // overlapping copy moves the tail to the front
			g.hist = append(g.hist[:n], toks...)
		}
		g.s.Reset()
		g.slides++
		toks = g.hist
		l, err := g.s.Prefill(toks)
		if err != nil {
			return err
		}
		g.logits = append(g.logits[:0], l...)
		return nil
	}
	l, err := g.s.Prefill(toks)
	if err != nil {
		return err
	}
	g.hist = append(g.hist, toks...)
	g.logits = append(g.logits[:0], l...)
	return nil
}
