package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// lmLayers counts the attention ops of a language model (its transformer blocks).
func lmLayers(m *qmodel.Model) int {
	n := 0
	for i := range m.Ops {
		if m.Ops[i].Kind == qmodel.OpAttention {
			n++
		}
	}
	return n
}

// benchLM measures prefill and decode speed of a language model (see bench's help).
func benchLM(e *env, m *qmodel.Model, rows int, dur time.Duration, threads int, lo infer.LoadOptions, budget int64) error {
	lm, err := loadLMModel("bench", m, lo)
	if err != nil {
		return err
	}
	opt, err := lmSessionOptions(e, lm, rows, budget)
	if err != nil {
		return err
	}
	rows = lm.PrefillRowsFor(opt)
	ctx := lm.ContextLength()
	w := e.stdout
	fmt.Fprintf(w, "model    %s (language model: vocabulary %d, context %d, %d layers, %d ops)\n", safe(m.Name), lm.Vocab(), ctx, lmLayers(m), len(m.Ops))
	fmt.Fprintf(w, "memory   weights %d bytes resident, KV cache %d bytes, session %d bytes (prefill batch %d)\n",
		lm.WeightBytes(), lm.KVCacheBytes(), lm.SessionBytes(opt), rows)
	fmt.Fprintf(w, "kernels  %s, GOMAXPROCS %d, %d threads, %s/%s\n", kernels.Path(), runtime.GOMAXPROCS(0), threads, runtime.GOOS, runtime.GOARCH)

	s := lm.NewSessionWith(opt)
	r := rand.New(rand.NewPCG(1, 2))
	toks := make([]int, ctx)
	for i := range toks {
		toks[i] = r.IntN(lm.Vocab())
	}

	// Prefill of a full context.
	if _, err := s.Prefill(toks); err != nil { // warm-up
		return err
	}
	runs := 0
	pcpu0, _ := processCPU()
	start := time.Now()
	for time.Since(start) < dur || runs < 2 {
		s.Reset()
		if _, err := s.Prefill(toks); err != nil {
			return err
		}
		runs++
	}
	el := time.Since(start)
	pcpu1, havePCPU := processCPU()
	fmt.Fprintf(w, "prefill  %.0f tokens/s, %.2f us/token (%d-token context in batches of %d, %d runs)",
		float64(runs*ctx)/el.Seconds(), float64(el.Nanoseconds())/1e3/float64(runs*ctx), ctx, rows, runs)
	if havePCPU {
		fmt.Fprintf(w, "; process CPU time %.2f us/token", float64((pcpu1-pcpu0).Nanoseconds())/1e3/float64(runs*ctx))
	}
	fmt.Fprintln(w)

	// Batch-1 decode at every position of the context.
	if ctx < 2 {
		fmt.Fprintf(w, "decode   not measured: the context holds %d token\n", ctx)
		return nil
	}
	restart := func() error {
		s.Reset()
		_, err := s.Decode(toks[0])
		return err
	}
	if err := restart(); err != nil {
		return err
	}
	for i := 1; i < min(ctx, 20); i++ { // warm-up
		if _, err := s.Decode(toks[i]); err != nil {
			return err
		}
	}
	if err := restart(); err != nil {
		return err
	}
	lat := make([]time.Duration, 0, 1024)
	var total time.Duration
	cpu0, _ := processCPU()
	for start := time.Now(); time.Since(start) < dur || len(lat) < ctx-1; {
		if s.Room() == 0 {
			if err := restart(); err != nil {
				return err
			}
		}
		t0 := time.Now()
		_, err := s.Decode(toks[s.Pos()])
		d := time.Since(t0)
		if err != nil {
			return err
		}
		lat = append(lat, d)
		total += d
	}
	cpu1, haveCPU := processCPU()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(w, "decode   %.0f tokens/s; per token p50 %.2f us, p99 %.2f us, mean %.2f us (batch 1, positions 1..%d, %d tokens)",
		float64(len(lat))/total.Seconds(), us(pct(0.50)), us(pct(0.99)), us(total/time.Duration(len(lat))), ctx-1, len(lat))
	if haveCPU {
		fmt.Fprintf(w, "; process CPU time %.2f us/token", float64((cpu1-cpu0).Nanoseconds())/1e3/float64(len(lat)))
	}
	fmt.Fprintln(w)
	return nil
}
