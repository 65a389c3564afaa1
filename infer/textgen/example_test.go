package textgen_test

import (
	"fmt"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/infer/textgen"
	"github.com/qatgo/qatgo/internal/lmref"
)

// Generate 20 bytes after a prompt with a byte-level model, sampling at temperature 0.8 among the
// 40 most likely bytes, and score a text.
func Example() {
	m, err := lmref.RandomLM(lmref.Tiny(8, 0), 1) // stands in for qmodel.ReadFile("tinyllm-w8a8.qm")
	if err != nil {
		panic(err)
	}
	lm, err := infer.LoadLM(m)
	if err != nil {
		panic(err)
	}
	smp, err := textgen.NewSampler(textgen.SamplerOptions{Temperature: 0.8, TopK: 40, Seed: 1})
	if err != nil {
		panic(err)
	}
	g, err := textgen.NewGenerator(lm, smp, textgen.GeneratorOptions{})
	if err != nil {
		panic(err)
	}
	var out []byte
	prompt := []int{'f', 'u', 'n', 'c', ' '}
	if err := g.Generate(prompt, 20, func(tok int) error { out = append(out, byte(tok)); return nil }); err != nil {
		panic(err)
	}
	fmt.Println(len(out), "bytes generated")

	text := []byte("func main() {}\n")
	toks := make([]int, len(text))
	for i, b := range text {
		toks[i] = int(b)
	}
	sc, err := textgen.ScoreTokens(lm.NewSession(), toks)
	if err != nil {
		panic(err)
	}
	fmt.Println(sc.Tokens, "bytes predicted, bits per byte > 0:", sc.BitsPerToken() > 0)
	// Output:
	// 20 bytes generated
	// 14 bytes predicted, bits per byte > 0: true
}
