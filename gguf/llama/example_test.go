package llama_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/gguf/llama"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

// QAT with llama.cpp's Q4_0 arithmetic through qat.Trainer, then a Q4_0 GGUF for llama.cpp.
func ExamplePreset() {
	lm, _ := graph.NewLM("tiny", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 16}, tensor.Float32, 1)
	text := []byte("func main() { fmt.Println(\"hello, llama.cpp\") }\n")
	batches := func(step int64) (ids, targets []int) {
		for b := 0; b < 4; b++ {
			for i := 0; i < 16; i++ {
				o := (int(step)*4 + b + i) % (len(text) - 1)
				ids, targets = append(ids, int(text[o])), append(targets, int(text[o+1]))
			}
		}
		return ids, targets
	}
	// The preset is the graph's quantizer: every linear weight as Q4_0, every matmul input as
	// llama.cpp's dynamic Q8_0.
	task := &qat.NextTokenTask{LM: lm, Train: batches, Opts: graph.LMOptions{Quant: llama.Preset{Type: gguf.Q4_0}}}
	tr, err := qat.NewTrainer(task, nil, qat.Config{BatchSize: 4, LR: 3e-3, Steps: 20, Logger: quiet()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	if err := tr.Fit(nil); err != nil {
		fmt.Println(err)
		return
	}
	w, _ := llama.FromLM(lm)
	path := filepath.Join(os.TempDir(), "qatgo-example-q4_0.gguf")
	defer os.Remove(path)
	if err := llama.WriteFile(path, w, llama.EncodeOptions{Type: gguf.Q4_0}); err != nil {
		fmt.Println(err)
		return
	}
	f, _ := gguf.ReadFile(path)
	fmt.Println(len(f.Tensors), "tensors;", f.Tensor("blk.0.ffn_down.weight").Type, f.Tensor("output_norm.weight").Type)
	// Output: 12 tensors; Q4_0 F32
}

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
