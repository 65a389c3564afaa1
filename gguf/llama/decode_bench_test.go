package llama

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"gorgonia.org/tensor"
)

// lmFromQModel returns the graph.LM whose weights are the real (dequantized) weights of the
// integer LM m built by lmref: the same model for llama.cpp (through a GGUF export) and for
// qatgo's integer runtime.
func lmFromQModel(m *qmodel.Model, c lmref.Config) (*graph.LM, error) {
	lm, err := graph.NewLM("bench", graph.LMConfig{Vocab: c.Vocab, Dim: c.Dim, Layers: c.Layers, Heads: c.Heads,
		Hidden: c.Hidden, Ctx: c.Ctx}, tensor.Float32, 1)
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

// threadCPU returns the CPU time of the calling OS thread (Linux; 0 elsewhere).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	}{{"tiny", lmref.Tiny(4, 32)}, {"stories15M", lmref.Stories15M(4, 32)}} {
		b.Run(bc.name, func(b *testing.B) {
			const prompt = 16
			n := min(b.N, bc.cfg.Ctx-prompt)
			m, err := lmref.RandomLM(bc.cfg, 7)
			if err != nil {
				b.Fatal(err)
			}
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
