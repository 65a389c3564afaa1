package textgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmref"
)

func testLM(t testing.TB, ctx int) *infer.LM {
	t.Helper()
	m, err := lmref.RandomLM(lmref.Config{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: ctx, Bits: 8}, 3)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := infer.LoadLM(m)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

func mustSampler(t testing.TB, o SamplerOptions) *Sampler {
	t.Helper()
	s, err := NewSampler(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGreedy(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name   string
		logits []float32
		want   int
	}{
		{"empty", nil, -1},
		{"one", []float32{-3}, 0},
		{"max in the middle", []float32{1, 5, 2}, 1},
		{"tie goes to the lower index", []float32{1, 5, 5, 2}, 1},
		{"negative", []float32{-7, -2, -9}, 1},
		{"NaN first is skipped", []float32{nan, -1, 3}, 2},
		{"NaN later is skipped", []float32{0, nan, -1}, 0},
		{"all NaN", []float32{nan, nan}, 0},
		{"+Inf", []float32{1, inf, 3}, 1},
		{"all -Inf", []float32{-inf, -inf}, 0},
	} {
		if got := Greedy(c.logits); got != c.want {
			t.Errorf("%s: Greedy(%v) = %d, want %d", c.name, c.logits, got, c.want)
		}
	}
}

// TestGreedyIsArgmaxOfSession: at temperature 0 the sampler picks the argmax of the runtime's
// logits (checked against a plain loop and infer.Argmax) at every position of a prompt.
func TestGreedyIsArgmaxOfSession(t *testing.T) {
	lm := testLM(t, 32)
	s := lm.NewSession()
	smp := mustSampler(t, SamplerOptions{})
	r := rand.New(rand.NewPCG(1, 1))
	toks := make([]int, 32)
	for i := range toks {
		toks[i] = r.IntN(256)
	}
	n := 0
	err := s.PrefillEach(toks, func(i int, l []float32) {
		best := 0
		for j := range l {
			if l[j] > l[best] {
				best = j
			}
		}
		if got := smp.Sample(l); got != best || got != infer.Argmax(l) {
			t.Errorf("position %d: greedy sample %d, argmax %d", i, got, best)
		}
		n++
	})
	if err != nil || n != len(toks) {
		t.Fatal(err, n)
	}
}

// TestTopKOneIsGreedy: top-k 1 gives the greedy token at any temperature and seed.
func TestTopKOneIsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	l := make([]float32, 256)
	for _, temp := range []float64{0.1, 1, 5} {
		smp := mustSampler(t, SamplerOptions{Temperature: temp, TopK: 1, Seed: 9})
		for trial := 0; trial < 200; trial++ {
			for i := range l {
				l[i] = float32(r.NormFloat64() * 3)
				if trial%10 == 0 { // ties
					l[i] = float32(r.IntN(4))
				}
			}
			if got, want := smp.Sample(l), Greedy(l); got != want {
				t.Fatalf("temperature %v trial %d: top-1 sample %d, greedy %d", temp, trial, got, want)
			}
		}
	}
}

// TestProbabilities compares the sampler's distribution with hand computations.
func TestProbabilities(t *testing.T) {
	ln := func(x float64) float32 { return float32(math.Log(x)) }
	d3 := 2 + math.Exp(-8)
	for _, c := range []struct {
		name   string
		opt    SamplerOptions
		logits []float32
		want   []float64
	}{
		// softmax(ln 1, ln 2, ln 3) = 1/6, 2/6, 3/6
		{"T=1", SamplerOptions{Temperature: 1}, []float32{ln(1), ln(2), ln(3)}, []float64{1. / 6, 2. / 6, 3. / 6}},
		// logits/2 = ln 1, ln 2, ln 3
		{"T=2", SamplerOptions{Temperature: 2}, []float32{2 * ln(1), 2 * ln(2), 2 * ln(3)}, []float64{1. / 6, 2. / 6, 3. / 6}},
		// T=0.5: exp(2*ln x) = x^2: 1, 4, 9 over 14
		{"T=0.5", SamplerOptions{Temperature: 0.5}, []float32{ln(1), ln(2), ln(3)}, []float64{1. / 14, 4. / 14, 9. / 14}},
		// top-2 of (ln 1, ln 2, ln 3): 2/5, 3/5
		{"top-2", SamplerOptions{Temperature: 1, TopK: 2}, []float32{ln(1), ln(2), ln(3)}, []float64{0, 2. / 5, 3. / 5}},
		// ties at the boundary go to the lower index: {0, 1} of (2, 2, 2)
		{"top-2 ties", SamplerOptions{Temperature: 1, TopK: 2}, []float32{2, 2, 2}, []float64{0.5, 0.5, 0}},
		// kept: indices 1 and 3 (logit 9) and 2 (logit 1): exp(0), exp(-8), exp(0) over 2+exp(-8)
		{"top-3 of 5", SamplerOptions{Temperature: 1, TopK: 3}, []float32{0, 9, 1, 9, 0.5}, []float64{0, 1 / d3, math.Exp(-8) / d3, 1 / d3, 0}},
		{"top-k above the vocabulary", SamplerOptions{Temperature: 1, TopK: 99}, []float32{ln(1), ln(3)}, []float64{0.25, 0.75}},
		{"greedy", SamplerOptions{}, []float32{1, 3, 2}, []float64{0, 1, 0}},
		{"NaN gets 0", SamplerOptions{Temperature: 1}, []float32{float32(math.NaN()), ln(1), ln(1)}, []float64{0, 0.5, 0.5}},
	} {
		smp := mustSampler(t, c.opt)
		got, err := smp.Probabilities(c.logits, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.want {
			if math.Abs(got[i]-c.want[i]) > 1e-6 {
				t.Errorf("%s: p = %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// TestSampleFrequencies: with a fixed seed, 60000 draws at T=1 over softmax(ln 1, ln 2, ln 3)
// land within 1% (about 4.5 standard deviations) of 1/6, 2/6, 3/6; top-k 2 never draws token 0;
// the same seed repeats the sequence and another seed does not.
func TestSampleFrequencies(t *testing.T) {
	l := []float32{0, float32(math.Log(2)), float32(math.Log(3))}
	draw := func(o SamplerOptions, n int) []int {
		smp := mustSampler(t, o)
		out := make([]int, n)
		for i := range out {
			out[i] = smp.Sample(l)
		}
		return out
	}
	const n = 60000
	seq := draw(SamplerOptions{Temperature: 1, Seed: 42}, n)
	var count [3]int
	for _, tok := range seq {
		count[tok]++
	}
	for i, want := range []float64{1. / 6, 2. / 6, 3. / 6} {
		if f := float64(count[i]) / n; math.Abs(f-want) > 0.01 {
			t.Errorf("token %d: frequency %.4f, want %.4f", i, f, want)
		}
	}
	if !slices.Equal(seq[:100], draw(SamplerOptions{Temperature: 1, Seed: 42}, 100)) {
		t.Error("the same seed gave another sequence")
	}
	if slices.Equal(seq[:100], draw(SamplerOptions{Temperature: 1, Seed: 43}, 100)) {
		t.Error("another seed gave the same sequence")
	}
	for _, tok := range draw(SamplerOptions{Temperature: 1, TopK: 2, Seed: 1}, 2000) {
		if tok == 0 {
			t.Fatal("top-2 drew the least likely token")
		}
	}
}

func TestSamplerBadOptions(t *testing.T) {
	for _, o := range []SamplerOptions{
		{Temperature: -1}, {Temperature: math.NaN()}, {Temperature: math.Inf(1)}, {TopK: -1},
	} {
		if _, err := NewSampler(o); err == nil {
			t.Errorf("NewSampler(%+v) accepted", o)
		}
	}
	if _, err := mustSampler(t, SamplerOptions{Temperature: 1}).Probabilities(nil, nil); err == nil {
		t.Error("Probabilities of empty logits accepted")
	}
	if got := mustSampler(t, SamplerOptions{Temperature: 1}).Sample(nil); got != -1 {
		t.Errorf("Sample(nil) = %d", got)
	}
}

func TestSampleNoAllocs(t *testing.T) {
	l := make([]float32, 256)
	for i := range l {
		l[i] = float32(i % 17)
	}
	smp := mustSampler(t, SamplerOptions{Temperature: 0.8, TopK: 40, Seed: 1})
	smp.Sample(l)
	if a := testing.AllocsPerRun(100, func() { smp.Sample(l) }); a != 0 {
		t.Errorf("Sample allocates %v times per call", a)
	}
}
