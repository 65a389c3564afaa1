package qat

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GGMLPreset.QConfig: the Specs it sets, its JSON round trip (checkpoints keep it), and what
// Prepare accepts.
func TestGGMLPresetQConfig(t *testing.T) {
	for _, c := range []struct {
		p    GGMLPreset
		name string
		bits int
	}{
		{GGMLPreset{Type: gguf.Q4_0}, "GGML-Q4_0", 0},
		{GGMLPreset{Type: gguf.Q8_0, KV: gguf.F16}, "GGML-Q8_0-KV-F16", 0},
		{GGMLPreset{Type: gguf.Q4_0, LearnScale: true}, "GGML-Q4_0-LSQ", 4},
		{GGMLPreset{Type: gguf.Q8_0, LearnScale: true}, "GGML-Q8_0-LSQ", 8},
	} {
		q := c.p.QConfig()
		if q.Name != c.name || q.GGML == nil || *q.GGML != c.p || !q.Act.Float {
			t.Errorf("%+v: QConfig %+v", c.p, q)
		}
		if c.bits == 0 && !q.Weight.Float {
			t.Errorf("%+v: weights are not left to the preset", c.p)
		}
		if c.bits > 0 && (q.Weight.Bits != c.bits || q.Weight.Method != fakequant.LSQ || q.Weight.GroupSize != 32 || !q.Weight.ScaleF16) {
			t.Errorf("%+v: weight spec %+v", c.p, q.Weight)
		}
		j, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseQConfig(j); err != nil || !reflect.DeepEqual(back, q) {
			t.Errorf("JSON %s -> %+v, %v", j, back, err)
		}
		if tw := ObservedTwin(q); tw.Weight.ScaleF16 || tw.GGML == nil {
			t.Errorf("%+v: observed twin %+v", c.p, tw)
		}
	}
	lm, err := graph.NewLM("t", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 8}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    GGMLPreset
		want string
	}{
		{GGMLPreset{Type: gguf.Q4_0, LearnScale: true}, ""},
		{GGMLPreset{Type: gguf.F16, LearnScale: true}, "LearnScale needs Q8_0 or Q4_0"},
		{GGMLPreset{Type: gguf.TensorType(99)}, "no preset for"},
		{GGMLPreset{Type: gguf.Q4_0, KV: gguf.Q8_0}, "no KV cache of type"},
	} {
		_, err := Prepare(lm, c.p.QConfig())
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Prepare error %v, want %q", c.p, err, c.want)
		}
	}
	if _, err := Prepare(graph.NewModel("cnn", []int{2}, tensor.Float32, 1), GGMLPreset{Type: gguf.Q4_0}.QConfig()); err == nil {
		t.Error("the GGML preset was accepted for a layer model")
	}
	bad := W8A8()
	bad.Act.ScaleF16 = true
	if _, err := Prepare(lm, bad); err == nil || !strings.Contains(err.Error(), "ScaleF16") {
		t.Errorf("ScaleF16 on activations: %v", err)
	}
}

// The NetQuant of a GGML-prepared LM computes the preset's forward: its logits equal those of
// the preset used directly as the graph's quantizer, bit for bit (no learned scales).
func TestGGMLPreparedMatchesPreset(t *testing.T) {
	lm, err := graph.NewLM("t", graph.LMConfig{Vocab: 256, Dim: 32, Layers: 1, Heads: 2, Hidden: 64, Ctx: 8}, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	pre := GGMLPreset{Type: gguf.Q4_0}
	p, err := Prepare(lm, pre.QConfig())
	if err != nil {
		t.Fatal(err)
	}
	logits := func(q graph.Quantizer) []float32 {
		net, err := lm.Build(graph.LMOptions{Batch: 1, Quant: q})
		if err != nil {
			t.Fatal(err)
		}
		ids := []int{1, 2, 3, 4, 5, 6, 7, 8}
		if err := net.SetBatch(ids, ids); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(net.G)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), net.Logits.Value().Data().([]float32)...)
	}
	a, b, f := logits(pre), logits(p.EvalQuantizer()), logits(nil)
	same := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: preset %v, prepared %v", i, a[i], b[i])
		}
		if a[i] == f[i] {
			same++
		}
	}
	if same == len(a) {
		t.Error("the preset's logits equal the float model's: nothing was quantized")
	}
}
