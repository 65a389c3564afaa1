package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

func init() {
	register(&command{
		name:    "bench",
		args:    "MODEL",
		summary: "measure batch-1 latency (p50/p99), batch-N throughput and the time per op",
		detail: `Inputs are random (the integer runtime's speed does not depend on the values). Each
measurement runs for about -time after a warm-up. The per-op breakdown comes from the runtime's
opt-in profiler at batch -batch.

For a language model, bench measures prefill (a full context of random tokens run in batches of
-batch rows, capped at the context length) and batch-1 decode: one token at a time at every
position from 1 to the end of the context (then the context is reset), with the time of each
token; p50/p99 are over those tokens. It also prints the memory the weights, the KV cache and
a session need.`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			batch := fs.Int("batch", 256, "batch size of the throughput and per-op measurements")
			dur := fs.Duration("time", time.Second, "duration of each measurement")
			limitsOf := limitsFlags(fs)
			return func(e *env, args []string) error {
				if err := needArgs(args, "MODEL"); err != nil {
					return err
				}
				if *batch < 1 || *batch > 1<<16 {
					return usagef("-batch must be in [1,65536], got %d", *batch)
				}
				if *dur <= 0 {
					return usagef("-time must be positive, got %v", *dur)
				}
				lim, err := limitsOf()
				if err != nil {
					return err
				}
				defer lim.restore()
				lo, budget, nt := lim.load, lim.memory, lim.threads
				return bench(e, args[0], *batch, *dur, nt, lo, budget)
			}
		},
	})
}

// runner returns a function that runs a batch of random inputs on s.
func runner(s *infer.Session, batch int) func() error {
	md := s.Model()
	r := rand.New(rand.NewPCG(1, 2))
	n := md.InputSize() * batch
	switch md.InputType() {
	case qmodel.Uint8:
		px := make([]byte, n)
		for i := range px {
			px[i] = byte(r.IntN(256))
		}
		return func() error { _, err := s.RunUint8(px, batch); return err }
	default:
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.Float64())
		}
		return func() error { _, err := s.Run(x, batch); return err }
	}
}

func bench(e *env, modelPath string, batch int, dur time.Duration, threads int, lo infer.LoadOptions, budget int64) error {
	m, err := qmodel.ReadFile(modelPath)
	if err != nil {
		return err
	}
	if m.IsLM() {
		return benchLM(e, m, batch, dur, threads, lo, budget)
	}
	md, err := infer.LoadWith(m, lo)
	if err != nil {
		return fmt.Errorf("%s: %w", modelPath, err)
	}
	if batch, err = fitBatch(e, md, batch, infer.SessionOptions{Threads: threads}, budget); err != nil {
		return err
	}
	w := e.stdout
	macs := modelMACs(md.QModel())
	fmt.Fprintf(w, "model    %s (%d ops, %d multiply-accumulates per sample)\n", safe(md.QModel().Name), md.NumOps(), macs)
	fmt.Fprintf(w, "kernels  %s, GOMAXPROCS %d, %d threads, %s/%s\n", kernelsName(), runtime.GOMAXPROCS(0), threads, runtime.GOOS, runtime.GOARCH)

	// Batch-1 latency.
	s := md.NewSessionWith(infer.SessionOptions{Threads: threads})
	defer s.Close()
	run1 := runner(s, 1)
	for i := 0; i < 20; i++ {
		if err := run1(); err != nil {
			return err
		}
	}
	var lat []time.Duration
	for start := time.Now(); time.Since(start) < dur || len(lat) < 10; {
		t0 := time.Now()
		run1()
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	fmt.Fprintf(w, "batch 1  p50 %.2f us, p99 %.2f us, mean %.2f us (%d runs)\n",
		us(pct(0.50)), us(pct(0.99)), us(sum/time.Duration(len(lat))), len(lat))

	// Batch-N throughput.
	runN := runner(s, batch)
	if err := runN(); err != nil {
		return err
	}
	runs := 0
	cpu0, _ := processCPU()
	start := time.Now()
	for time.Since(start) < dur || runs < 3 {
		runN()
		runs++
	}
	el := time.Since(start)
	cpu1, haveCPU := processCPU()
	per := float64(el.Nanoseconds()) / 1e3 / float64(runs*batch)
	fmt.Fprintf(w, "batch %d  %.2f us/image, %.0f images/s, %.2f GMAC/s (%d runs)", batch, per, 1e6/per, float64(macs)/per/1e3, runs)
	if haveCPU {
		fmt.Fprintf(w, "; process CPU time %.2f us/image", float64((cpu1-cpu0).Nanoseconds())/1e3/float64(runs*batch))
	}
	fmt.Fprintln(w)

	// Per-op breakdown.
	s.EnableProfile(true)
	for start := time.Now(); time.Since(start) < dur/2 || runs < 3; runs++ {
		runN()
	}
	prof := s.Profile()
	var total time.Duration
	for _, p := range prof {
		total += p.Total
	}
	fmt.Fprintf(w, "\nper op (batch %d, one thread):\n", batch)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "#\top\tname\tus/image\tshare\t")
	for i, p := range prof {
		if p.Calls == 0 {
			continue
		}
		share := 0.0
		if total > 0 {
			share = 100 * float64(p.Total) / float64(total)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%.1f%%\t\n", i, p.Kind, safe(p.Name), float64(p.Total.Nanoseconds())/1e3/float64(p.Calls*batch), share)
	}
	tw.Flush()
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// kernelsName is the kernels path, with "+amx" where its convolutions run on AMX tiles.
func kernelsName() string {
	if kernels.AMX() {
		return kernels.Path() + "+amx"
	}
	return kernels.Path()
}
