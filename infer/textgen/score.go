package textgen

import (
	"errors"
	"fmt"
	"math"

	"github.com/qatgo/qatgo/infer"
)

// Score is the negative log-likelihood a model gave a number of predicted tokens.
type Score struct {
	NLL    float64 // sum of -ln p(target), in nats
	Tokens int     // number of predicted (scored) tokens
}

// Add returns the sum of two scores.
func (s Score) Add(o Score) Score { return Score{NLL: s.NLL + o.NLL, Tokens: s.Tokens + o.Tokens} }

// Loss returns the mean negative log-likelihood per token in nats (NaN for no tokens).
func (s Score) Loss() float64 {
	if s.Tokens == 0 {
		return math.NaN()
	}
	return s.NLL / float64(s.Tokens)
}

// BitsPerToken returns the mean negative log2-likelihood per token: bits per byte for a
// byte-level model.
func (s Score) BitsPerToken() float64 { return s.Loss() / math.Ln2 }

// Perplexity returns exp(Loss).
func (s Score) Perplexity() float64 { return math.Exp(s.Loss()) }

// NLL returns -ln softmax(logits)[target] computed in float64 (log-sum-exp with the maximum
// subtracted). It returns +Inf when the target's logit is -Inf or NaN, or when target is out of
// range.
func NLL(logits []float32, target int) float64 {
	if target < 0 || target >= len(logits) {
		return math.Inf(1)
	}
	mx := math.Inf(-1)
	for _, l := range logits {
		if x := float64(l); x == x {
			mx = max(mx, x)
		}
	}
	t := float64(logits[target])
	if t != t || math.IsInf(t, -1) || math.IsInf(mx, 1) {
		return math.Inf(1)
	}
	var sum float64
	for _, l := range logits {
		if x := float64(l); x == x {
			sum += math.Exp(x - mx)
		}
	}
	return math.Log(sum) - (t - mx)
}

// ScoreTokens scores tokens with the session's model, cut into windows of the context length as
// the package documentation describes. It resets the session before each window (and leaves
// it holding the last window). A sequence of fewer than two tokens scores nothing.
func ScoreTokens(s *infer.LMSession, tokens []int) (Score, error) {
	var sc Score
	if s == nil {
		return sc, errors.New("textgen: ScoreTokens needs a session")
	}
	v := s.LM().Vocab()
	for i, t := range tokens {
		if t < 0 || t >= v {
			return sc, fmt.Errorf("textgen: token %d at index %d outside the vocabulary [0,%d)", t, i, v)
		}
	}
	ctx := s.LM().ContextLength()
	for o := 0; o < len(tokens)-1; o += ctx {
		in := tokens[o:min(o+ctx, len(tokens)-1)]
		s.Reset()
		var bad error
		err := s.PrefillEach(in, func(i int, logits []float32) {
			nll := NLL(logits, tokens[o+i+1])
			if math.IsInf(nll, 1) && bad == nil {
				bad = fmt.Errorf("textgen: token %d has probability 0 (logit %v)", o+i+1, logits[tokens[o+i+1]])
			}
			sc.NLL += nll
		})
		if err != nil {
			return sc, err
		}
		if bad != nil {
			return sc, bad
		}
		sc.Tokens += len(in)
	}
	return sc, nil
}
