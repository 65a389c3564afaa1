package qat

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
)

func TestQConfigPresetsAndOverrides(t *testing.T) {
	m := BNCNN(1)
	c := W4A4LSQ().FirstLast8(m)
	bits := map[string]int{}
	for _, s := range m.Sites() {
		fc, on, err := c.fqConfig(m, s)
		if err != nil || !on {
			t.Fatalf("%s: on=%v err=%v", s.Name, on, err)
		}
		bits[s.Name] = fc.Bits
		if s.Kind == graph.SiteWeight && (fc.Scheme != fakequant.SymmetricNarrow || fc.Granularity != fakequant.PerChannel || fc.Axis != 0) {
			t.Errorf("%s: weight config %+v", s.Name, fc)
		}
		if s.Kind == graph.SiteActivation && (fc.Scheme != fakequant.AsymmetricSigned || !fc.LearnOffset || fc.Method != fakequant.LSQ) {
			t.Errorf("%s: activation config %+v", s.Name, fc)
		}
	}
	want := map[string]int{"input": 8, "conv1.weight": 8, "conv1.out": 8, "conv2.weight": 4, "conv2.out": 4,
		"conv3.weight": 4, "conv3.out": 4, "fc.weight": 8, "fc.out": 8}
	for k, v := range want {
		if bits[k] != v {
			t.Errorf("%s: %d bits, want %d", k, bits[k], v)
		}
	}
	// an override keyed by a non-first layer of the group (the BN) applies to the whole group
	fl := Spec{Float: true}
	c2 := W8A8().With("bn2", Override{Weight: &fl, Act: &fl})
	for _, s := range m.Sites() {
		_, on, _ := c2.fqConfig(m, s)
		if on == (s.Group == "conv2") {
			t.Errorf("%s quantized=%v with conv2 group float", s.Name, on)
		}
	}
	if _, err := Prepare(m, W8A8().With("nope", Override{})); err == nil {
		t.Error("override of an unknown layer accepted")
	}
	for _, n := range []string{"w8a8", "W4A8", "w4a4", "w4a4-obs", "w2a2"} {
		if _, err := Preset(n); err != nil {
			t.Errorf("Preset(%q): %v", n, err)
		}
	}
	if _, err := Preset("w3a3"); err == nil {
		t.Error("unknown preset accepted")
	}
	bad := W8A8()
	bad.Weight.Bits = 9
	if _, err := Prepare(m, bad); err == nil {
		t.Error("9-bit weights accepted")
	}
}

// Every preset and its observed twin round-trips through its name (Preset(c.Name) == c) and
// through JSON; names are unique; a QConfig with overrides round-trips through JSON and a
// checkpoint (CheckpointQConfig).
func TestQConfigNamesAndJSONRoundTrip(t *testing.T) {
	var all []QConfig
	for _, c := range []QConfig{W8A8(), W4A8LSQ(), W4A4LSQ(), W4A4Observed(), W2A2()} {
		all = append(all, c, ObservedTwin(c))
	}
	seen := map[string]bool{}
	for _, c := range all {
		if seen[strings.ToLower(c.Name)] {
			t.Errorf("name %q used twice", c.Name)
		}
		seen[strings.ToLower(c.Name)] = true
		got, err := Preset(c.Name)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("Preset(%q) = %+v, %v; want %+v", c.Name, got, err, c)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseQConfig(j); err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("JSON %s -> %+v, %v", j, back, err)
		}
	}
	if c, _ := Preset("w4a4"); c.Weight.Method != fakequant.LSQ {
		t.Error("w4a4 is not LSQ")
	}
	if c, _ := Preset("w4a4-obs"); c.Weight.Method != fakequant.Observed || c.Name != "W4A4-obs" {
		t.Errorf("w4a4-obs: %+v", c)
	}

	m := BNCNN(1)
	pact := Spec{Bits: 4, Method: fakequant.PACT}
	fl := Spec{Float: true}
	c := W4A4LSQ().FirstLast8(m).With("conv2", Override{Act: &pact}).With("conv3", Override{Weight: &fl})
	c.BiasQuant = BiasOff
	p, err := Prepare(m, c)
	if err != nil {
		t.Fatal(err)
	}
	var ck graph.Checkpoint
	p.SaveState(&ck)
	back, err := CheckpointQConfig(&ck)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("CheckpointQConfig = %+v, %v; want %+v", back, err, c)
	}
	if back.Describe(m) != c.Describe(m) || ck.Meta[MetaModel] != "bn-cnn" {
		t.Errorf("restored config describes\n%s\nwant\n%s (model %q)", back.Describe(m), c.Describe(m), ck.Meta[MetaModel])
	}
	// old checkpoints: the preset name only
	old := graph.Checkpoint{Meta: map[string]string{MetaQConfigName: "W8A8-observed"}}
	if got, err := CheckpointQConfig(&old); err != nil || !reflect.DeepEqual(got, ObservedTwin(W8A8())) {
		t.Errorf("name-only checkpoint: %+v, %v", got, err)
	}
	for _, bad := range []graph.Checkpoint{
		{},
		{Meta: map[string]string{MetaQConfigName: "W4A4-LSQ-fl8"}},
		{Meta: map[string]string{MetaQConfig: `{"name":"x","weight":{"bits":4,"method":"magic"}}`}},
		{Meta: map[string]string{MetaQConfig: `{"name":"x","weight":{"bits":4,"method":"lsq","extra":1}}`}},
		{Meta: map[string]string{MetaQConfig: `{"name":"x"} {}`}},
		{Meta: map[string]string{MetaQConfig: `{"weight":{"bits":4,"method":"lsq"}}`}},
	} {
		if got, err := CheckpointQConfig(&bad); err == nil {
			t.Errorf("%v accepted: %+v", bad.Meta, got)
		}
	}
}

// TestParseQConfigRejects: JSON that decodes but describes specs no model can use is an error
// (ParseQConfig once accepted any bit width, momentum or GGML type and left it to Prepare).
func TestParseQConfigRejects(t *testing.T) {
	const act = `"act":{"bits":8,"method":"observed"}`
	for _, bad := range []string{
		`{"name":"x","weight":{"bits":99,"method":"lsq"},` + act + `}`,
		`{"name":"x","weight":{"bits":1,"method":"lsq"},` + act + `}`,
		`{"name":"x","weight":{"bits":-3,"method":"lsq"},` + act + `}`,
		`{"name":"x","weight":{"bits":8,"method":"observed","momentum":2},` + act + `}`,
		`{"name":"x","weight":{"bits":8,"method":"observed","group_size":-4},` + act + `}`,
		`{"name":"x","weight":{"bits":8,"method":"lsq","group_size":32,"per_tensor":true},` + act + `}`,
		`{"name":"x","weight":{"bits":8,"method":"lsq"},"act":{"bits":8,"method":"lsq","group_size":32}}`,
		`{"name":"x","weight":{"bits":8,"method":"lsq"},"act":{"bits":8,"method":"lsq","scale_f16":true}}`,
		`{"name":"x","weight":{"bits":8,"method":"observed","observer":"ema"},` + act + `}`,
		`{"name":"x","weight":{"bits":8,"method":"observed","percentile":99},` + act + `}`,
		`{"name":"x","weight":{"bits":4,"method":"lsq"},` + act + `,"overrides":{"fc":{"weight":{"bits":16,"method":"lsq"}}}}`,
		`{"name":"x","weight":{"bits":4,"method":"lsq"},` + act + `,"kv":{"bits":8,"method":"pact"}}`,
		`{"name":"x","weight":{"bits":0,"method":"lsq","float":true},"act":{"bits":0,"method":"lsq","float":true},"ggml":{"type":3}}`,
		`{"name":"x","weight":{"bits":0,"method":"lsq","float":true},"act":{"bits":0,"method":"lsq","float":true},"ggml":{"type":0,"learn_scale":true}}`,
	} {
		if c, err := ParseQConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s as %+v", bad, c)
		}
	}
	// float specs keep whatever bit width they were written with
	if _, err := ParseQConfig([]byte(`{"name":"x","weight":{"bits":99,"method":"lsq","float":true},` + act + `}`)); err != nil {
		t.Errorf("float weight spec: %v", err)
	}
}

// FuzzParseQConfig: any bytes give a QConfig or an error, never a panic; an accepted QConfig has
// a name, quantized specs within the documented ranges (Bits 2..8, Momentum in [0, 1], GroupSize
// >= 0), and survives json.Marshal and ParseQConfig unchanged.
func FuzzParseQConfig(f *testing.F) {
	fl8 := W4A4LSQ().FirstLast8(BNCNN(1))
	kv := W8A8()
	kv.KV = &Spec{Bits: 4, Method: fakequant.LSQ}
	kv.BiasQuant = BiasOn
	opts := W8A8()
	opts.Weight.GroupSize, opts.Weight.Observer = 8, ObserverMSE
	opts.Act.Scheme, opts.Act.Observer, opts.Act.Percentile = SchemeUnsigned, ObserverPercentile, 99.9
	for _, c := range []QConfig{W8A8(), W4A8LSQ(), W2A2(), ObservedTwin(W4A4LSQ()), fl8, kv, opts,
		GGMLPreset{Type: gguf.Q4_0, KV: gguf.F16, LearnScale: true}.QConfig()} {
		j, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
		f.Add(j[:len(j)/2])                                                  // truncated
		f.Add(append(j, " {}"...))                                           // trailing data
		f.Add(bytes.Replace(j, []byte(`"bits":8`), []byte(`"bits":1e9`), 1)) // huge bit width
	}
	f.Add([]byte(`{"name":"x"}`))
	f.Add([]byte(`{"name":"x","weight":null}`))
	f.Add([]byte(`{"name":"x","weight":{"bits":8,"method":"lsq","bogus":1}}`))
	f.Add([]byte(`{"name":"x","overrides":{"fc":{},"":{"act":null}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseQConfig(b)
		if err != nil {
			return
		}
		if c.Name == "" || (c.Overrides != nil && len(c.Overrides) == 0) {
			t.Fatalf("accepted %+v", c)
		}
		specs := []*Spec{&c.Weight, &c.Act, c.KV}
		for _, o := range c.Overrides {
			specs = append(specs, o.Weight, o.Act)
		}
		for _, sp := range specs {
			if sp == nil || sp.Float || sp.Bits == 0 {
				continue
			}
			if !quant.ValidBits(sp.Bits) || !(sp.Momentum >= 0 && sp.Momentum <= 1) || sp.GroupSize < 0 {
				t.Fatalf("accepted spec %+v", *sp)
			}
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		back, err := ParseQConfig(j)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip through %s: %+v (%v), want %+v", j, back, err, c)
		}
	})
}
