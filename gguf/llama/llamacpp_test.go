package llama

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/qatgo/qatgo/gguf"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// llamaDir is where .ci/run installs node-llama-cpp (see .ci/llamacpp/package.json).
var llamaDir = filepath.Join("..", "..", ".ci", "llamacpp")

type llamaRequest struct {
	Model     string        `json:"model"`
	Sequences [][]int       `json:"sequences,omitempty"`
	Greedy    []greedyQuery `json:"greedy,omitempty"`
	Text      *string       `json:"text,omitempty"`
	Stepwise  bool          `json:"stepwise,omitempty"`
	KV        string        `json:"kv,omitempty"` // KV cache type: "F32" (default) or "F16"
}

type greedyQuery struct {
	Prompt []int `json:"prompt"`
	N      int   `json:"n"`
}

type llamaResponse struct {
	LogProbs [][][]float64 `json:"logprobs"`
	Greedy   [][]int       `json:"greedy"`
	Tokenize []int         `json:"tokenize"`
	Timings  struct {
		PromptTokens int     `json:"prompt_tokens"`
		PromptMS     float64 `json:"prompt_ms"`
		GenTokens    int     `json:"gen_tokens"`
		GenMS        float64 `json:"gen_ms"`
	} `json:"timings"`
}

// runLlamaCpp evaluates req in llama.cpp through .ci/llamacpp/eval.mjs, or skips the test when
// node or node-llama-cpp is not installed.
func runLlamaCpp(t *testing.T, req llamaRequest) *llamaResponse {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the llama.cpp parity check needs node and node-llama-cpp (.ci/run installs both)")
	}
	if _, err := os.Stat(filepath.Join(llamaDir, "node_modules", "node-llama-cpp", "package.json")); err != nil {
		t.Skipf("node-llama-cpp is not installed in %s: run `npm ci --ignore-scripts --omit=optional` there (.ci/run does)", llamaDir)
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command(node, "eval.mjs")
	cmd.Dir = llamaDir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("llama.cpp run failed: %v\n%s", err, stderr.String())
	}
	var res llamaResponse
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("llama.cpp output: %v\n%.2000s\n%s", err, stdout.String(), stderr.String())
	}
	return &res
}

// lmLogProbs runs m's Gorgonia forward (with quantizer q, or float if nil) on one sequence of
// Ctx tokens and returns the log-softmax of the logits at every position.
func lmLogProbs(t *testing.T, m *graph.LM, q graph.Quantizer, ids []int) [][]float64 {
	t.Helper()
	net, err := m.Build(graph.LMOptions{Batch: 1, Quant: q})
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetBatch(ids, ids); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(net.G)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	V := m.Config.Vocab
	var logits []float64
	switch d := net.Logits.Value().(tensor.Tensor).Data().(type) {
	case []float32:
		for _, v := range d {
			logits = append(logits, float64(v))
		}
	case []float64:
		logits = append(logits, d...)
	}
	out := make([][]float64, len(ids))
	for i := range out {
		row := logits[i*V : (i+1)*V]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		out[i] = make([]float64, V)
		for j, v := range row {
			out[i][j] = v - mx - math.Log(s)
		}
	}
	return out
}

func maxAbsDiff(a, b [][]float64) float64 {
	var d float64
	for i := range a {
		for j := range a[i] {
			d = max(d, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return d
}

func testLM(t *testing.T, seed uint64) *graph.LM {
	t.Helper()
	m, err := graph.NewLM("parity", graph.LMConfig{Vocab: 256, Dim: 64, Layers: 2, Heads: 4, Hidden: 128, Ctx: 72}, tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testTokens(n int, seed int) []int {
	text := []byte("func (b *Buffer) WriteString(s string) (n int, err error) {\n\tb.lastRead = opInvalid\n\tm, ok := b.tryGrowByReslice(len(s))\n")
	ids := make([]int, n)
	for i := range ids {
		ids[i] = int(text[(i+seed)%len(text)])
	}
	return ids
}

func TestLlamaCppF32Parity(t *testing.T) {
	m := testLM(t, 1)
	w, err := FromLM(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteFile(path, w, EncodeOptions{}); err != nil {
		t.Fatal(err)
	}
	seqs := [][]int{testTokens(72, 0), testTokens(72, 31)}
	res := runLlamaCpp(t, llamaRequest{Model: path, Sequences: seqs})
	for i, s := range seqs {
		want := lmLogProbs(t, m, nil, s)
		d := maxAbsDiff(res.LogProbs[i], want)
		t.Logf("sequence %d: max |log p(llama.cpp) - log p(qatgo)| = %.3g", i, d)
		if d > 1e-4 {
			t.Errorf("sequence %d: llama.cpp and qatgo differ by %.3g (limit 1e-4)", i, d)
		}
	}
}

// A model QAT-trained briefly with the Q8_0 / Q4_0 preset gives in llama.cpp, from the file
// written at that type, the log-probabilities of qatgo's fake-quant forward within 1e-3 at every
// position (the bound; measured: about 2e-6, the float32 softmax llama.cpp reports the
// probabilities with). The preset reproduces llama.cpp's float32 arithmetic for the matmuls
// (fakequant.GGMLLinear), RMSNorm, SwiGLU and the attention (fakequant.GGMLAttention), so every
// Q8_0 rounding of a matmul input sees llama.cpp's value: none rounds the other way. Greedy
// continuations agree for 64 tokens, and the perplexity within 0.5%.
func TestLlamaCppQuantizedParity(t *testing.T) {
	for _, tc := range []struct{ typ, kv gguf.TensorType }{{gguf.Q8_0, gguf.F32}, {gguf.Q4_0, gguf.F32}, {gguf.Q4_0, gguf.F16}} {
		typ := tc.typ
		t.Run(typ.String()+"/KV-"+tc.kv.String(), func(t *testing.T) {
			m := testLM(t, 2)
			q := Preset{Type: typ, KV: tc.kv}
			trainBriefly(t, m, q, 30) // a QAT-preset model, not only random weights
			w, err := FromLM(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := WriteFile(path, w, EncodeOptions{Type: typ}); err != nil {
				t.Fatal(err)
			}
			seqs := [][]int{testTokens(72, 0), testTokens(72, 40), testTokens(72, 17), testTokens(72, 93)}
			prompt := testTokens(8, 3)
			res := runLlamaCpp(t, llamaRequest{Model: path, Sequences: seqs, Greedy: []greedyQuery{{prompt, 64}}, KV: tc.kv.String()})
			var nllQ, nllL float64
			for i, s := range seqs {
				want := lmLogProbs(t, m, q, s)
				var worst float64
				for p := range want {
					d := maxAbsDiff(res.LogProbs[i][p:p+1], want[p:p+1])
					worst = max(worst, d)
					if d > 1e-3 {
						t.Errorf("sequence %d, position %d: llama.cpp and qatgo's fake-quant forward differ by %.3g (limit 1e-3)", i, p, d)
					}
				}
				t.Logf("sequence %d: max |log p(llama.cpp) - log p(qatgo fake-quant)| = %.3g over %d positions", i, worst, len(want))
				for p := 0; p+1 < len(s); p++ {
					nllQ -= want[p][s[p+1]]
					nllL -= res.LogProbs[i][p][s[p+1]]
				}
			}
			pplQ, pplL := math.Exp(nllQ/float64(71*len(seqs))), math.Exp(nllL/float64(71*len(seqs)))
			t.Logf("perplexity: qatgo %.4f, llama.cpp %.4f", pplQ, pplL)
			if math.Abs(pplL/pplQ-1) > 0.005 {
				t.Errorf("perplexity: llama.cpp %.4f vs qatgo %.4f", pplL, pplQ)
			}
			got := greedyLM(t, m, q, prompt, 64)
			if !slices.Equal(got, res.Greedy[0]) {
				t.Errorf("greedy continuations differ:\nqatgo     %v\nllama.cpp %v", got, res.Greedy[0])
			}
		})
	}
}

// trainBriefly runs steps of Adam on next-byte prediction over windows of a fixed Go snippet,
// with quantizer q in the graph (QAT).
func trainBriefly(t *testing.T, m *graph.LM, q graph.Quantizer, steps int) {
	t.Helper()
	net, err := m.Build(graph.LMOptions{Batch: 4, Quant: q})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(net.Loss, net.ParamNodes()...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(net.G, G.BindDualValues(net.ParamNodes()...))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(3e-3))
	C := m.Config.Ctx
	var first, last float32
	for i := 0; i < steps; i++ {
		x, y := make([]int, 4*C), make([]int, 4*C)
		for b := 0; b < 4; b++ {
			w := testTokens(C+1, 7*(i*4+b))
			copy(x[b*C:], w[:C])
			copy(y[b*C:], w[1:])
		}
		if err := net.SetBatch(x, y); err != nil {
			t.Fatal(err)
		}
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		last = net.Loss.Value().Data().(float32)
		if i == 0 {
			first = last
		}
		if err := solver.Step(G.NodesToValueGrads(net.ParamNodes())); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
	}
	t.Logf("QAT training: loss %.3f -> %.3f in %d steps", first, last, steps)
}

// greedyLM continues prompt by n argmax tokens with m's forward (Ctx must hold prompt+n-1).
func greedyLM(t *testing.T, m *graph.LM, q graph.Quantizer, prompt []int, n int) []int {
	t.Helper()
	net, err := m.Build(graph.LMOptions{Batch: 1, Quant: q})
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(net.G)
	defer vm.Close()
	ids := make([]int, m.Config.Ctx)
	copy(ids, prompt)
	V := m.Config.Vocab
	var out []int
	for pos := len(prompt) - 1; len(out) < n; pos++ {
		if err := net.SetBatch(ids, ids); err != nil {
			t.Fatal(err)
		}
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
		row := net.Logits.Value().Data().([]float32)[pos*V : (pos+1)*V]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out = append(out, best)
		if pos+1 < len(ids) {
			ids[pos+1] = best
		}
	}
	return out
}

// llamaQuantize quantizes in to out with llama.cpp's own quantizer (llama_model_quantize, every
// weight to typ), through .ci/llamacpp/quantize.py, or skips the test without python3 or
// node-llama-cpp.
func llamaQuantize(t *testing.T, in, out, typ string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: calling llama.cpp's quantizer needs it (.ci/run installs it)")
	}
	if _, err := os.Stat(filepath.Join(llamaDir, "node_modules", "node-llama-cpp", "package.json")); err != nil {
		t.Skipf("node-llama-cpp is not installed in %s (.ci/run installs it)", llamaDir)
	}
	cmd := exec.Command(py, filepath.Join(llamaDir, "quantize.py"), in, out, typ)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("llama.cpp quantize: %v\n%s", err, b)
	}
}

// qatgo's Q8_0 and Q4_0 tensors are byte for byte those llama.cpp's quantizer writes from the
// F32 export of the same model.
func TestQuantizersMatchLlamaCpp(t *testing.T) {
	w, err := FromLM(testLM(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f32 := filepath.Join(dir, "f32.gguf")
	if err := WriteFile(f32, w, EncodeOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []gguf.TensorType{gguf.Q8_0, gguf.Q4_0} {
		theirs := filepath.Join(dir, "llamacpp.gguf")
		llamaQuantize(t, f32, theirs, typ.String())
		a, err := gguf.ReadFile(theirs)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Encode(w, EncodeOptions{Type: typ, EmbedType: &typ})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ta := range a.Tensors {
			tb := f.Tensor(ta.Name)
			if tb == nil || ta.Type != tb.Type || !bytes.Equal(ta.Data, tb.Data) {
				t.Fatalf("%v: tensor %s differs from llama.cpp's (%v vs %v)", typ, ta.Name, ta.Type, tb.Type)
			}
			if ta.Type == typ {
				n++
			}
		}
		if n != 2+7*w.Config.Layers || len(a.Tensors) != len(f.Tensors) {
			t.Fatalf("%v: %d quantized tensors of %d", typ, n, len(a.Tensors))
		}
		t.Logf("%v: all %d tensors equal llama.cpp's bytes", typ, len(a.Tensors))
	}
}
