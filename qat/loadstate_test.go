package qat

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/graph"
	"gorgonia.org/tensor"
)

// cloneCheckpoint copies the maps of c (tensors are shared: the cases replace, never mutate them).
func cloneCheckpoint(c *graph.Checkpoint) *graph.Checkpoint {
	return &graph.Checkpoint{Step: c.Step, Epoch: c.Epoch, Seed: c.Seed, Tensors: maps.Clone(c.Tensors), Meta: maps.Clone(c.Meta)}
}

// LoadState restores the state SaveState wrote and rejects checkpoints that lack state the
// QConfig needs, or hold malformed state, with an error naming the quantizer.
func TestLoadStateMalformedCheckpoints(t *testing.T) {
	m := tinyModel(3)
	data := randomSet{n: 64}
	obs, err := Calibrate(m, W8A8(), data, 1, 16, 1) // observers with recorded ranges, frozen
	if err != nil {
		t.Fatal(err)
	}
	var obsCk graph.Checkpoint
	obs.SaveState(&obsCk)
	lsq, err := Prepare(m, W4A4LSQ())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runObservers(lsq, data, 1, 16, 1); err != nil { // builds a graph: creates the learnables
		t.Fatal(err)
	}
	var lsqCk graph.Checkpoint
	lsq.SaveState(&lsqCk)
	fresh, err := Prepare(m, obs.Config) // never ran: its observers have no state
	if err != nil {
		t.Fatal(err)
	}
	var freshCk graph.Checkpoint
	fresh.SaveState(&freshCk)
	var floatCk graph.Checkpoint
	m.SaveState(&floatCk)

	del := func(keys ...string) func(*graph.Checkpoint) {
		return func(c *graph.Checkpoint) {
			for _, k := range keys {
				delete(c.Tensors, k)
			}
		}
	}
	put := func(key string, v any) func(*graph.Checkpoint) {
		return func(c *graph.Checkpoint) {
			n := 0
			switch v := v.(type) {
			case []float64:
				n = len(v)
			case []float32:
				n = len(v)
			}
			c.Tensors[key] = tensor.New(tensor.WithShape(n), tensor.WithBacking(v))
		}
	}
	meta := func(key, v string) func(*graph.Checkpoint) {
		return func(c *graph.Checkpoint) {
			if v == "" {
				delete(c.Meta, key)
			} else {
				c.Meta[key] = v
			}
		}
	}
	cases := []struct {
		name    string
		ck      *graph.Checkpoint
		cfg     QConfig
		mutate  func(*graph.Checkpoint)
		wantErr []string // substrings of the error; nil: success
	}{
		{"observed ok", &obsCk, obs.Config, nil, nil},
		{"lsq ok", &lsqCk, W4A4LSQ(), nil, nil},
		{"never-run observers ok", &freshCk, obs.Config, nil, nil},
		{"old two-field flags", &obsCk, obs.Config, meta("quant/conv.weight.flags", "enabled=true frozen=true"), nil},
		{"observed checkpoint, LSQ config", &obsCk, W4A4LSQ(), nil, []string{"method observed", "lsq"}},
		{"lsq checkpoint, observed config", &lsqCk, obs.Config, nil, []string{"method lsq"}},
		{"float checkpoint", &floatCk, W4A4LSQ(), nil, []string{`"input"`, "no state"}},
		{"missing log_scale", &lsqCk, W4A4LSQ(), del("quant/conv.weight.log_scale"), []string{`"conv.weight"`, "log_scale"}},
		{"missing offset", &lsqCk, W4A4LSQ(), del("quant/fc.out.offset"), []string{`"fc.out"`, "offset"}},
		{"missing obs_hi", &obsCk, obs.Config, del("quant/conv.out.obs_hi"), []string{`"conv.out"`, "obs_hi"}},
		{"missing obs_lo", &obsCk, obs.Config, del("quant/conv.out.obs_lo"), []string{`"conv.out"`, "obs_lo"}},
		{"missing observer state", &obsCk, obs.Config, del("quant/input.obs_lo", "quant/input.obs_hi"), []string{`"input"`, "obs_lo"}},
		{"float32 obs_hi", &obsCk, obs.Config, put("quant/fc.out.obs_hi", []float32{1}), []string{`"fc.out"`, "float64"}},
		{"obs length mismatch", &obsCk, obs.Config, put("quant/conv.weight.obs_hi", []float64{1, 2}), []string{`"conv.weight"`, "obs_hi 2"}},
		{"fixed_scale without zp", &obsCk, obs.Config, put("quant/input.fixed_scale", []float64{0.1}), []string{`"input"`, "fixed_zp"}},
		{"fixed NaN scale", &obsCk, obs.Config, func(c *graph.Checkpoint) {
			put("quant/input.fixed_scale", []float64{0})(c)
			put("quant/input.fixed_zp", []float64{0})(c)
		}, []string{`"input"`, "bad scale"}},
		{"missing flags", &obsCk, obs.Config, meta("quant/fc.weight.flags", ""), []string{`"fc.weight"`, "flags"}},
		{"bad bool flag", &obsCk, obs.Config, meta("quant/fc.weight.flags", "enabled=maybe frozen=true"), []string{`"fc.weight"`, "malformed"}},
		{"trailing junk flag", &obsCk, obs.Config, meta("quant/fc.weight.flags", "enabled=true frozen=true method=observed state=true x"), []string{`"fc.weight"`, "malformed"}},
		{"truncated flag", &obsCk, obs.Config, meta("quant/fc.weight.flags", "enabled=true"), []string{`"fc.weight"`, "malformed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ck := cloneCheckpoint(tc.ck)
			if tc.mutate != nil {
				tc.mutate(ck)
			}
			p, err := Prepare(m, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = p.LoadState(ck)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error with %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	// What was loaded equals what was saved: observer ranges and flags, learnables.
	p, _ := Prepare(m, obs.Config)
	if err := p.LoadState(&obsCk); err != nil {
		t.Fatal(err)
	}
	for name, st := range obs.state {
		got := p.state[name].fq
		glo, ghi, gok := got.Observed()
		slo, shi, sok := st.fq.Observed()
		if !slices.Equal(glo, slo) || !slices.Equal(ghi, shi) || got.Frozen() != st.fq.Frozen() || got.Enabled() != st.fq.Enabled() || gok != sok {
			t.Errorf("%s: loaded lo %v hi %v frozen %v enabled %v, saved %v %v %v %v", name, glo, ghi, got.Frozen(), got.Enabled(), slo, shi, st.fq.Frozen(), st.fq.Enabled())
		}
	}
	if !p.state["conv.weight"].fq.Frozen() {
		t.Error("frozen flag not restored (Calibrate freezes)")
	}
	q, _ := Prepare(m, W4A4LSQ())
	if err := q.LoadState(&lsqCk); err != nil {
		t.Fatal(err)
	}
	for name, st := range lsq.state {
		got := q.state[name]
		if st.logScale == nil || got.logScale == nil || !slices.Equal(got.logScale.Data().([]float32), st.logScale.Data().([]float32)) {
			t.Errorf("%s: log_scale not restored", name)
		}
	}
}
