package llama

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"golang.org/x/sys/unix"
	"gorgonia.org/tensor"
)

// lmFromQModel returns the graph.LM whose weights are the real (dequantized) weights of the
// integer LM m built by lmref: the same model for llama.cpp (through a GGUF export) and for
// qatgo's integer runtime.
func lmFromQModel(m *qmodel.Model, c lmref.Config) (*graph.LM, error) {
	lm, err := graph.NewLM("bench", graph.LMConfig{Vocab: c.Vocab, Dim: c.Dim, Layers: c.Layers, Heads: c.Heads,
		Hidden: c.Hidden, Ctx: c.Ctx, RoPEBase: float64(c.Theta), Eps: float64(c.Eps)}, tensor.Float32, 1)
	if err != nil {
		return nil, err
	}
	n := 0
	for i := range m.Ops {
		op := &m.Ops[i]
		switch op.Kind {
		case qmodel.OpEmbedding, qmodel.OpLinear, qmodel.OpLMHead:
		default:
			continue
		}
		w, err := lmref.Dequantized(m, op)
		if err != nil {
			return nil, err
		}
		p := lm.Param(op.Name + ".weight")
		if p == nil || len(p.Value.Data().([]float32)) != len(w) {
			return nil, fmt.Errorf("no LM weight of %d values for %s", len(w), op.Name)
		}
		copy(p.Value.Data().([]float32), w)
		n++
	}
	if n != 2+7*c.Layers {
		return nil, fmt.Errorf("%d weights copied", n)
	}
	return lm, nil
}

// qmodelConfig reads the shape of the integer LM m (as examples/tinyllm or qatgo export write
// it) from its ops: embedding and linear weight shapes, attention, RoPE and RMSNorm attributes.
func qmodelConfig(m *qmodel.Model) (lmref.Config, error) {
	var c lmref.Config
	for i := range m.Ops {
		op := &m.Ops[i]
		switch op.Kind {
		case qmodel.OpEmbedding:
			s := m.Tensors[op.Inputs[1]].Shape
			c.Vocab, c.Dim = s[0], s[1]
		case qmodel.OpAttention:
			c.Layers++
			c.Heads, c.KVHeads, c.Ctx = op.LM.Heads, op.LM.KVHeads, op.LM.MaxSeq
		case qmodel.OpRoPE:
			c.Theta = op.LM.Theta
		case qmodel.OpRMSNorm:
			c.Eps = op.LM.Eps
		case qmodel.OpLinear:
			if s := m.Tensors[op.Inputs[1]].Shape; len(s) == 2 && s[0] > c.Hidden && s[1] == c.Dim {
				c.Hidden = s[0] // the widest linear reading the residual stream: the SwiGLU gate/up
			}
		}
	}
	if c.Vocab == 0 || c.Layers == 0 || c.Heads == 0 || c.Hidden == 0 || c.KVHeads != c.Heads {
		return c, fmt.Errorf("not a qatgo LM of the supported shape: %+v", c)
	}
	return c, nil
}

// threadCPU returns the CPU time of the calling OS thread, to the nanosecond
// (CLOCK_THREAD_CPUTIME_ID; getrusage counts whole scheduler ticks, too coarse for the tiny
// model's sub-millisecond decode runs); 0 where the clock is missing.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkDecodeVersusLlamaCpp decodes the same int4 LM (lmref's random Stories15M shape, int4
// per group of 32, and the tiny tinyllm shape) on one thread with qatgo's integer runtime
// (infer.LMSession.Decode) and with llama.cpp from a Q4_0 GGUF of its dequantized weights
// (.ci/llamacpp/bench.py: llama_decode through the C API, one call per token, llama.cpp's default
// F16 KV cache). Both decode the same count of tokens after a 16-token prompt; tokens/s are per
// CPU second of the decoding thread (qatgo) or process (llama.cpp), so a loaded machine lowers
// both alike. One llama.cpp run per benchmark run.
//
//	go test ./gguf/llama -run '^$' -bench DecodeVersusLlamaCpp -benchtime 200x
//
// With QATGO_BENCH_QM set to an integer LM file (e.g. tinyllm-w4a8.qm, which
// `go run ./examples/tinyllm -quick -out DIR` writes from a trained model), a third benchmark,
// "trained", runs that model the same way.
func BenchmarkDecodeVersusLlamaCpp(b *testing.B) {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 is not installed")
	}
	if _, err := os.Stat(filepath.Join(llamaDir, "node_modules", "node-llama-cpp", "package.json")); err != nil {
		b.Skipf("node-llama-cpp is not installed in %s", llamaDir)
	}
	defer kernels.SetMaxThreads(kernels.SetMaxThreads(1))
	for _, bc := range []struct {
		name string
		cfg  lmref.Config
	}{{"tiny", lmref.Tiny(4, 32)}, {"stories15M", lmref.Stories15M(4, 32)}, {"trained", lmref.Config{}}} {
		b.Run(bc.name, func(b *testing.B) {
			const prompt = 16
			var m *qmodel.Model
			var err error
			if bc.name == "trained" {
				path := os.Getenv("QATGO_BENCH_QM")
				if path == "" {
					b.Skip("QATGO_BENCH_QM names no integer LM file")
				}
				raw, err := os.ReadFile(path)
				if err != nil {
					b.Fatal(err)
				}
				if m, err = qmodel.Decode(raw); err != nil {
					b.Fatal(err)
				}
				if bc.cfg, err = qmodelConfig(m); err != nil {
					b.Fatal(err)
				}
			} else if m, err = lmref.RandomLM(bc.cfg, 7); err != nil {
				b.Fatal(err)
			}
			n := min(b.N, bc.cfg.Ctx-prompt)
			lm, err := lmFromQModel(m, bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			w, err := FromLM(lm)
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), "m.gguf")
			if err := WriteFile(path, w, EncodeOptions{Type: gguf.Q4_0}); err != nil {
				b.Fatal(err)
			}
			out, err := exec.Command(py, filepath.Join(llamaDir, "bench.py"), path, fmt.Sprint(n), "1", fmt.Sprint(prompt)).Output()
			if err != nil {
				b.Fatalf("llama.cpp bench: %v", err)
			}
			var res struct {
				CPU  float64 `json:"decode_tok_s_cpu"`
				Wall float64 `json:"decode_tok_s_wall"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				b.Fatalf("llama.cpp bench output %q: %v", out, err)
			}
			ilm, err := infer.LoadLM(m)
			if err != nil {
				b.Fatal(err)
			}
			s := ilm.NewSession()
			toks := make([]int, prompt+n)
			for i := range toks {
				toks[i] = (7 * i) % bc.cfg.Vocab
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			var cpu time.Duration
			for done := 0; done < b.N; done += n {
				s.Reset()
				if _, err := s.Prefill(toks[:prompt]); err != nil {
					b.Fatal(err)
				}
				k := min(n, b.N-done)
				c0 := threadCPU()
				for i := 0; i < k; i++ {
					if _, err := s.Decode(toks[prompt+i]); err != nil {
						b.Fatal(err)
					}
				}
				cpu += threadCPU() - c0
			}
			q := float64(b.N) / cpu.Seconds()
			b.ReportMetric(q, "qatgo-tok/s")
			b.ReportMetric(res.CPU, "llamacpp-tok/s")
			b.ReportMetric(res.Wall, "llamacpp-wall-tok/s")
			b.ReportMetric(q/res.CPU, "qatgo/llamacpp")
		})
	}
}
