package graph

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// everyKindModel uses every layer kind of Model, with non-default attributes.
func everyKindModel(seed uint64) *Model {
	m := NewModel("every-kind", []int{4, 9, 9}, tensor.Float32, seed)
	m.Conv2d("c1", Conv{Out: 4, Kernel: 3, Pad: 1, Stride: 1, Bias: true})
	m.BatchNorm("bn1", 1e-3, 0.2)
	m.ReLU6("")
	m.Conv2d("dw", Conv{Out: 4, Kernel: 3, Pad: 1, Groups: 4})
	m.Add("sum", "relu60", "dw")
	m.ReLU("")
	m.MaxPool2d("mp", 3, 2, 1)
	m.AvgPool2d("ap", 2, 1)
	m.Dropout("drop", 0.25)
	m.Flatten("flat")
	m.Linear("fc1", 6, false)
	m.BatchNorm("bn2", 0, 0)
	m.Linear("fc2", 3, true)
	return m
}

func forward(t *testing.T, m *Model, x []float32) []float32 {
	t.Helper()
	n, err := m.Build(Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	copy(n.XVal.Data().([]float32), x)
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	runVM(t, vm)
	return slices.Clone(n.Out.Value().Data().([]float32))
}

func TestModelFromCheckpoint(t *testing.T) {
	a := everyKindModel(1)
	// distinct BN buffers, so that restoring them matters
	for _, p := range a.Params() {
		if p.Role == RoleRunningMean {
			p.Value.Data().([]float32)[0] = 0.5
		}
	}
	var c Checkpoint
	a.SaveState(&c)
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCheckpoint(enc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ModelFromCheckpoint(d)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Arch(), b.Arch()) || b.Name != a.Name || !slices.Equal(b.Input, a.Input) {
		t.Fatalf("rebuilt arch differs:\n%+v\n%+v", a.Arch(), b.Arch())
	}
	if len(b.Params()) != len(a.Params()) {
		t.Fatalf("%d params, want %d", len(b.Params()), len(a.Params()))
	}
	for _, p := range a.Params() {
		if !slices.Equal(p.Value.Data().([]float32), b.Param(p.Name).Value.Data().([]float32)) {
			t.Errorf("%s differs", p.Name)
		}
	}
	x := make([]float32, 2*4*9*9)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	if ya, yb := forward(t, a, x), forward(t, b, x); !slices.Equal(ya, yb) {
		t.Errorf("outputs differ: %v vs %v", ya, yb)
	}
	if !reflect.DeepEqual(a.Groups(), b.Groups()) || !reflect.DeepEqual(a.Sites(), b.Sites()) {
		t.Error("groups or sites differ")
	}
}

func TestLMFromCheckpoint(t *testing.T) {
	cfg := tinyLMConfig()
	cfg.RoPEBase = 500
	a, err := NewLM("my-lm", cfg, tensor.Float64, 5)
	if err != nil {
		t.Fatal(err)
	}
	var c Checkpoint
	a.SaveState(&c)
	n, err := FromCheckpoint(&c)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := n.(*LM)
	if !ok {
		t.Fatalf("rebuilt a %T", n)
	}
	if b.Config != a.Config || b.Dtype != tensor.Float64 || b.Name != "my-lm" {
		t.Fatalf("rebuilt %q %+v %v", b.Name, b.Config, b.Dtype)
	}
	ids := randomTokens(rand.New(rand.NewPCG(1, 1)), cfg.Ctx, cfg.Vocab)
	logits := func(m *LM) []float64 {
		net, err := m.Build(LMOptions{Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := net.SetBatch(ids, ids); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(net.G)
		defer vm.Close()
		runVM(t, vm)
		return slices.Clone(net.Logits.Value().Data().([]float64))
	}
	if la, lb := logits(a), logits(b); !slices.Equal(la, lb) {
		t.Error("logits differ after the rebuild")
	}
	if _, err := ModelFromCheckpoint(&c); err == nil || !strings.Contains(err.Error(), "not a layer model") {
		t.Errorf("ModelFromCheckpoint of an LM: %v", err)
	}
}

func TestFromCheckpointErrors(t *testing.T) {
	if _, err := FromCheckpoint(&Checkpoint{}); !errors.Is(err, ErrNoArch) {
		t.Errorf("no arch: %v", err)
	}
	good := everyKindModel(1).Arch()
	for _, tc := range []struct {
		name string
		edit func(a *Arch)
		msg  string
	}{
		{"unknown type", func(a *Arch) { a.Type = "rnn" }, "unknown type"},
		{"dtype", func(a *Arch) { a.Dtype = "int8" }, "dtype"},
		{"kind", func(a *Arch) { a.Layers[1].Kind = "softmax" }, "unknown kind"},
		{"shape", func(a *Arch) { a.Layers[0].OutShape = []int{4, 8, 8} }, "rebuilds with output"},
		{"input", func(a *Arch) { a.Layers[4].Inputs = []string{"c1", "nope"} }, "unknown input"},
		{"add arity", func(a *Arch) { a.Layers[4].Inputs = []string{"c1"} }, "want 2"},
		{"null layer", func(a *Arch) { a.Layers[2] = nil }, "null"},
		{"lm without config", func(a *Arch) { a.Type = ArchLM }, "without lm config"},
		{"bad lm", func(a *Arch) { a.Type, a.LM = ArchLM, &LMConfig{Vocab: 4, Dim: 6, Heads: 4, Ctx: 2} }, "heads"},
	} {
		j, _ := json.Marshal(good)
		var a Arch
		if err := json.Unmarshal(j, &a); err != nil {
			t.Fatal(err)
		}
		tc.edit(&a)
		j, _ = json.Marshal(a)
		c := &Checkpoint{}
		everyKindModel(1).SaveState(c) // the parameters, so that FromCheckpoint's size bound passes
		c.Meta[MetaArch] = string(j)
		if _, err := FromCheckpoint(c); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}
	c := &Checkpoint{Meta: map[string]string{MetaArch: "{"}}
	if _, err := FromCheckpoint(c); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("bad JSON: %v", err)
	}
	// parameters missing from the checkpoint: refused before allocation when the checkpoint holds
	// fewer values than they need, by LoadState otherwise
	j, _ := json.Marshal(good)
	c = &Checkpoint{Meta: map[string]string{MetaArch: string(j)}}
	if _, err := FromCheckpoint(c); err == nil || !strings.Contains(err.Error(), `parameter "c1.weight" of shape [4 4 3 3] needs more values than the checkpoint's tensors hold`) {
		t.Errorf("missing params: %v", err)
	}
	c.PutFloat32s("unrelated", make([]float32, 10000))
	if _, err := FromCheckpoint(c); err == nil || !strings.Contains(err.Error(), "no tensor") {
		t.Errorf("missing params: %v", err)
	}
}
