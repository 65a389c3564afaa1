package llama

import (
	"io"
	"math"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
)

// trainPrepared runs steps of QAT on p's LM through qat.Trainer (next-byte prediction on the
// test snippet), which initialises the learned scales first.
func trainPrepared(t *testing.T, p *qat.Prepared, steps int64) {
	t.Helper()
	lm := p.Net.(*graph.LM)
	C := lm.Config.Ctx
	batches := func(step int64) (ids, targets []int) {
		for b := 0; b < 4; b++ {
			w := testTokens(C+1, 7*(int(step)*4+b))
			ids, targets = append(ids, w[:C]...), append(targets, w[1:]...)
		}
		return ids, targets
	}
	task := &qat.NextTokenTask{LM: lm, Train: batches}
	for i := int64(0); i < 2; i++ { // calibration batches for the scales' initial ranges
		ids, targets := batches(1000 + i)
		task.CalibIDs, task.CalibTargets = append(task.CalibIDs, ids), append(task.CalibTargets, targets)
	}
	tr, err := qat.NewTrainer(task, p, qat.Config{BatchSize: 4, LR: 3e-3, Steps: steps, CalibBatches: 2, Logger: silent()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Fit(nil); err != nil {
		t.Fatal(err)
	}
}

// With GGMLPreset.LearnScale, training moves the fp16 block scales away from llama.cpp's max
// rule, and the GGUF file written with EncodeOptions.Exact holds, block for block, exactly the
// weights the fake-quant forward used: its decoded tensors equal the values of the graph's weight
// quantizer nodes bit for bit (read from a built graph, independently of FromPrepared), and
// llama.cpp's quantizer rule could not have produced them.
func TestLearnedScaleBlocksExact(t *testing.T) {
	for _, typ := range []gguf.TensorType{gguf.Q4_0, gguf.Q8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			m := testLM(t, 3)
			p, err := qat.Prepare(m, Preset{Type: typ, LearnScale: true}.QConfig())
			if err != nil {
				t.Fatal(err)
			}
			trainPrepared(t, p, 20)
			net, err := m.Build(graph.LMOptions{Batch: 1, Quant: p.EvalQuantizer()})
			if err != nil {
				t.Fatal(err)
			}
			ids := testTokens(m.Config.Ctx, 0)
			if err := net.SetBatch(ids, ids); err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(net.G)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			w, err := FromPrepared(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Encode(w, EncodeOptions{Type: typ}); err != nil {
				t.Fatal(err)
			}
			f, err := Encode(w, EncodeOptions{Type: typ, Exact: true})
			if err != nil {
				t.Fatal(err)
			}
			blocks, learned := 0, 0
			for g, name := range lmNames(w.Config) {
				site, ok := net.Sites[name]
				if !ok {
					continue
				}
				want := site.Value().Data().([]float32)
				tn := f.Tensor(g)
				if tn.Type != typ {
					t.Fatalf("%s is %v, want %v", g, tn.Type, typ)
				}
				got, err := tn.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s[%d]: file %v, fake-quant forward %v", g, i, got[i], want[i])
					}
				}
				ref, _ := gguf.Quantize(typ, want, len(want)/site.Shape()[0])
				back, _ := gguf.Dequantize(typ, ref, len(want))
				for b := 0; b < len(want); b += gguf.QK {
					blocks++
					if !equalFloats(back[b:b+gguf.QK], want[b:b+gguf.QK]) {
						learned++
					}
				}
			}
			t.Logf("%d blocks written exactly; %d of them off llama.cpp's own quantizer grid", blocks, learned)
			if learned == 0 {
				t.Error("every block is what llama.cpp's quantizer gives: the scales were not learned")
			}
			// a weight that is not on the grid is refused
			w.Tensors["blk.0.attn_q.weight"][0] += 1e-3
			if _, err := Encode(w, EncodeOptions{Type: typ, Exact: true}); err == nil {
				t.Error("a block off the grid was written with Exact")
			}
		})
	}
}

func equalFloats(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A model QAT-trained with the learned-scale Q4_0 preset, exported with FromPrepared and
// EncodeOptions.Exact, gives in llama.cpp the log-probabilities of its fake-quant forward
// within 1e-3 at every position.
func TestLlamaCppLearnedScaleParity(t *testing.T) {
	m := testLM(t, 4)
	p, err := qat.Prepare(m, Preset{Type: gguf.Q4_0, LearnScale: true}.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	trainPrepared(t, p, 20)
	w, err := FromPrepared(p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteFile(path, w, EncodeOptions{Type: gguf.Q4_0, Exact: true}); err != nil {
		t.Fatal(err)
	}
	seqs := [][]int{testTokens(72, 0), testTokens(72, 40)}
	res := runLlamaCpp(t, llamaRequest{Model: path, Sequences: seqs})
	for i, s := range seqs {
		want := lmLogProbs(t, m, p.EvalQuantizer(), s)
		d := maxAbsDiff(res.LogProbs[i], want)
		t.Logf("sequence %d: max |log p(llama.cpp) - log p(qatgo fake-quant)| = %.3g", i, d)
		if d > 1e-3 {
			t.Errorf("sequence %d: llama.cpp and qatgo's fake-quant forward differ by %.3g (limit 1e-3)", i, d)
		}
	}
}

func silent() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
