package infer

import (
	"strings"
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// poolBomb is a valid model of a few hundred bytes whose 2048x2048 max pool slides over a
// 4096x4096 input: about 1.8e13 window reads per sample, some ten hours (issue 14, item 1).
func poolBomb(t testing.TB) *qmodel.Model {
	b := qmodel.NewBuilder("pool-bomb")
	x := b.Input("x", qmodel.Float32, []int{4096, 4096, 1}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.1})
	p := b.MaxPool2D("p", q, qmodel.PoolOptions{KernelH: 2048, KernelW: 2048, StrideH: 1, StrideW: 1})
	b.Output(b.Dequantize("y", p))
	return build(t, b)
}

// TestLoadWorkBudget (issue 14, item 1): Load refuses a model over the per-sample work budget
// (qmodel.DefaultMaxWork unless LoadOptions.MaxWork says otherwise) with an error naming the op,
// before it allocates anything for it.
func TestLoadWorkBudget(t *testing.T) {
	bomb := poolBomb(t)
	enc, err := qmodel.Encode(bomb)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > 1024 {
		t.Errorf("the bomb is %d bytes; the point is that it is small", len(enc))
	}
	if _, err := Load(bomb); err == nil || !strings.Contains(err.Error(), "work budget") || !strings.Contains(err.Error(), `MaxPool2D "p"`) {
		t.Errorf("Load of a 1.8e13-read model: %v", err)
	}
	if _, err := LoadWith(bomb, LoadOptions{MaxWork: -1}); err != nil {
		t.Errorf("LoadWith no limit: %v", err)
	}
	cnn := mnistCNN(t, 1)
	total, _ := cnn.Work()
	if _, err := Load(cnn); err != nil {
		t.Errorf("the MNIST CNN (%d units) under the default budget: %v", total.Total(), err)
	}
	if _, err := LoadWith(cnn, LoadOptions{MaxWork: total.Total()}); err != nil {
		t.Errorf("budget equal to the model's work: %v", err)
	}
	if _, err := LoadWith(cnn, LoadOptions{MaxWork: total.Total() - 1}); err == nil || !strings.Contains(err.Error(), "work budget") {
		t.Errorf("budget one unit short: %v", err)
	}
}

// TestLMWorkBudget: a language model's per-token work (a full context of attention) is checked
// at load like a CNN's (context lengths themselves are bounded by validation).
func TestLMWorkBudget(t *testing.T) {
	m, err := lmref.RandomLM(lmref.Tiny(8, 0), 1)
	if err != nil {
		t.Fatal(err)
	}
	total, _ := m.Work()
	// Hand count of the attention ops alone: 2 layers x 2 products x 4 heads x 64 positions x 16.
	var attn int64
	for i := range m.Ops {
		if m.Ops[i].Kind == qmodel.OpAttention {
			attn += m.OpWork(&m.Ops[i]).MACs
		}
	}
	if attn != 2*2*4*64*16 {
		t.Errorf("attention MACs %d, want %d", attn, 2*2*4*64*16)
	}
	if _, err := LoadLMWith(m, LoadOptions{MaxWork: total.Total()}); err != nil {
		t.Errorf("load at exactly the model's work: %v", err)
	}
	if _, err := LoadLMWith(m, LoadOptions{MaxWork: total.Total() - 1}); err == nil || !strings.Contains(err.Error(), "work budget") {
		t.Errorf("load one unit below the work: %v", err)
	}
}
