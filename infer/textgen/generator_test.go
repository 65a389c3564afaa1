package textgen

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/infer"
)

// greedyReference generates n tokens greedily straight on an infer.LMSession.
func greedyReference(t *testing.T, lm *infer.LM, prompt []int, n int) []int {
	t.Helper()
	s := lm.NewSession()
	l, err := s.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for i := 0; i < n; i++ {
		tok := infer.Argmax(l)
		out = append(out, tok)
		if i+1 < n {
			if l, err = s.Decode(tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func generate(t *testing.T, g *Generator, prompt []int, n int) ([]int, error) {
	t.Helper()
	var out []int
	err := g.Generate(prompt, n, func(tok int) error { out = append(out, tok); return nil })
	return out, err
}

func TestGeneratorGreedyMatchesSession(t *testing.T) {
	lm := testLM(t, 32)
	prompt := []int{'f', 'u', 'n', 'c', ' '}
	n := 32 - len(prompt) + 1 // exactly fills the context: P + n - 1 = 32
	want := greedyReference(t, lm, prompt, n)
	g, err := NewGenerator(lm, mustSampler(t, SamplerOptions{}), GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := generate(t, g, prompt, n)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("generator %v (%v), session %v", got, err, want)
	}
	// Continuing in two calls gives the same text as one call.
	g.Reset()
	a, err := generate(t, g, prompt, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := generate(t, g, nil, n-10)
	if err != nil || !slices.Equal(append(a, b...), want) {
		t.Fatalf("two calls: %v + %v (%v), want %v", a, b, err, want)
	}
}

func TestGeneratorSeededIsDeterministic(t *testing.T) {
	lm := testLM(t, 32)
	run := func(seed uint64) []int {
		g, err := NewGenerator(lm, mustSampler(t, SamplerOptions{Temperature: 1, TopK: 20, Seed: seed}), GeneratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := generate(t, g, []int{1, 2, 3}, 25)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if a, b := run(7), run(7); !slices.Equal(a, b) {
		t.Fatalf("seed 7 gave %v then %v", a, b)
	}
	if a, b := run(7), run(8); slices.Equal(a, b) {
		t.Fatalf("seeds 7 and 8 both gave %v", a)
	}
}

func TestGeneratorContextOverflow(t *testing.T) {
	lm := testLM(t, 16)
	g, err := NewGenerator(lm, mustSampler(t, SamplerOptions{}), GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	emit := func(int) error { calls++; return nil }
	for _, c := range []struct{ p, n int }{{17, 0}, {16, 2}, {1, 17}, {5, math.MaxInt}} {
		err := g.Generate(make([]int, c.p), c.n, emit)
		if !errors.Is(err, infer.ErrContextFull) {
			t.Errorf("prompt %d + %d tokens in a context of 16: %v", c.p, c.n, err)
		}
		if calls != 0 || g.Session().Pos() != 0 {
			t.Fatalf("a rejected call did work: %d tokens emitted, position %d", calls, g.Session().Pos())
		}
	}
	if err := g.Generate(make([]int, 16), 1, emit); err != nil || calls != 1 {
		t.Fatalf("16 + 1 in 16: %v, %d tokens", err, calls)
	}
}

// TestGeneratorSlide: with the sliding window, generation runs past the context; the token after
// the first slide is the greedy token of a fresh session prefilled with the last Keep tokens.
func TestGeneratorSlide(t *testing.T) {
	const ctx, keep = 16, 6
	lm := testLM(t, ctx)
	g, err := NewGenerator(lm, mustSampler(t, SamplerOptions{}), GeneratorOptions{Slide: true, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{10, 20, 30}
	out, err := generate(t, g, prompt, 5*ctx)
	if err != nil || len(out) != 5*ctx {
		t.Fatalf("%d tokens, %v", len(out), err)
	}
	if g.Slides() == 0 {
		t.Fatal("no slide happened")
	}
	// Before the first slide the text is the plain greedy text.
	first := ctx - len(prompt) + 1
	if want := greedyReference(t, lm, prompt, first); !slices.Equal(out[:first], want) {
		t.Fatalf("before the slide: %v, want %v", out[:first], want)
	}
	all := append(slices.Clone(prompt), out[:first]...)
	if want := greedyReference(t, lm, all[len(all)-keep:], 1)[0]; out[first] != want {
		t.Fatalf("after the slide: %d, want %d", out[first], want)
	}
	// A prompt longer than the context keeps its last Keep tokens.
	g.Reset()
	long := make([]int, 3*ctx)
	for i := range long {
		long[i] = i % 7
	}
	got, err := generate(t, g, long, 1)
	if want := greedyReference(t, lm, long[len(long)-keep:], 1); err != nil || !slices.Equal(got, want) {
		t.Fatalf("long prompt: %v (%v), want %v", got, err, want)
	}
}

func TestGeneratorBadInput(t *testing.T) {
	lm := testLM(t, 16)
	smp := mustSampler(t, SamplerOptions{})
	for _, keep := range []int{-1, 16, 17} {
		if _, err := NewGenerator(lm, smp, GeneratorOptions{Slide: true, Keep: keep}); err == nil {
			t.Errorf("keep %d accepted", keep)
		}
	}
	if _, err := NewGenerator(nil, smp, GeneratorOptions{}); err == nil {
		t.Error("nil model accepted")
	}
	g, err := NewGenerator(lm, smp, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	none := func(int) error { t.Fatal("emitted"); return nil }
	for _, c := range []struct {
		name   string
		prompt []int
		n      int
	}{
		{"empty prompt", nil, 3},
		{"negative n", []int{1}, -1},
		{"token 256", []int{1, 256}, 1},
		{"negative token", []int{-1}, 1},
	} {
		if err := g.Generate(c.prompt, c.n, none); err == nil {
			t.Errorf("%s accepted", c.name)
		}
	}
	if err := g.Generate(nil, 0, none); err != nil {
		t.Errorf("empty prompt, n 0: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	err = g.Generate([]int{1}, 10, func(int) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("emit error: %v after %d tokens", err, n)
	}
}

func TestNLL(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		name   string
		logits []float32
		target int
		want   float64
	}{
		{"uniform 2", []float32{0, 0}, 0, math.Ln2},
		{"uniform 256", make([]float32, 256), 7, math.Log(256)},
		{"1:3", []float32{0, float32(math.Log(3))}, 0, math.Log(4)},
		{"3:1", []float32{0, float32(math.Log(3))}, 1, math.Log(4. / 3)},
		{"large logits", []float32{1000, 1000}, 1, math.Ln2},
		{"target -Inf", []float32{0, -inf}, 1, math.Inf(1)},
		{"out of range", []float32{0}, 1, math.Inf(1)},
		{"negative target", []float32{0}, -1, math.Inf(1)},
	} {
		if got := NLL(c.logits, c.target); math.Abs(got-c.want) > 1e-6 && got != c.want {
			t.Errorf("%s: NLL = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestScoreTokens compares the windowed score with token-by-token decoding from a fresh session
// per window and a direct log-sum-exp: every token but the first is scored once.
func TestScoreTokens(t *testing.T) {
	const ctx = 16
	lm := testLM(t, ctx)
	for _, n := range []int{0, 1, 2, ctx, ctx + 1, 2*ctx + 5} {
		toks := make([]int, n)
		for i := range toks {
			toks[i] = (i*37 + 11) % 256
		}
		sc, err := ScoreTokens(lm.NewSession(), toks)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		ref := lm.NewSession()
		for i := 0; i+1 < n; i++ {
			if i%ctx == 0 {
				ref.Reset()
			}
			l, err := ref.Decode(toks[i])
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, x := range l {
				sum += math.Exp(float64(x))
			}
			want += math.Log(sum) - float64(l[toks[i+1]])
		}
		if sc.Tokens != max(0, n-1) || math.Abs(sc.NLL-want) > 1e-6*max(1, want) {
			t.Errorf("%d tokens: score %+v, want NLL %v over %d tokens", n, sc, want, max(0, n-1))
		}
		if n > 1 && math.Abs(sc.BitsPerToken()-want/float64(n-1)/math.Ln2) > 1e-9 {
			t.Errorf("bits per token %v", sc.BitsPerToken())
		}
	}
	if _, err := ScoreTokens(lm.NewSession(), []int{1, 300}); err == nil {
		t.Error("a token outside the vocabulary was scored")
	}
	if s := (Score{NLL: 2 * math.Ln2, Tokens: 2}); s.BitsPerToken() != 1 || math.Abs(s.Perplexity()-2) > 1e-12 {
		t.Errorf("Score{2 ln 2, 2}: %v bits, perplexity %v", s.BitsPerToken(), s.Perplexity())
	}
}

// TestGeneratorNoAllocs: after a warm-up, generating (prefill, sampling with top-k, decode, and a
// slide) allocates nothing.
func TestGeneratorNoAllocs(t *testing.T) {
	lm := testLM(t, 16)
	g, err := NewGenerator(lm, mustSampler(t, SamplerOptions{Temperature: 0.9, TopK: 10, Seed: 1}), GeneratorOptions{Slide: true})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{1, 2, 3}
	emit := func(int) error { return nil }
	run := func() {
		g.Reset()
		if err := g.Generate(prompt, 40, emit); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if a := testing.AllocsPerRun(5, run); a != 0 {
		t.Errorf("Generate allocates %v times per call of 40 tokens", a)
	}
	if g.Slides() == 0 {
		t.Error("no slide happened")
	}
}
