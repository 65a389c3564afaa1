package infer

import (
	"strings"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
)

// TestOnnxruntimeRuleRefusesOtherOps checks that a model selecting qmodel.RequantOnnxruntime with
// an op that has no onnxruntime arithmetic here (AvgPool2D) fails to load with an error naming
// the rule, and loads under the default rule.
func TestOnnxruntimeRuleRefusesOtherOps(t *testing.T) {
	b := qmodel.NewBuilder("avg")
	x := b.Input("x", qmodel.Int8, []int{4, 4, 2}, qmodel.PerTensor(0.05, -7))
	b.Output(b.AvgPool2D("pool", x, qmodel.PoolOptions{KernelH: 2, KernelW: 2}))
	m := build(t, b)
	if _, err := Load(m); err != nil {
		t.Fatalf("default rule: %v", err)
	}
	m.Meta = map[string]string{qmodel.MetaRequant: qmodel.RequantOnnxruntime}
	if _, err := Load(m); err == nil || !strings.Contains(err.Error(), "requant=onnxruntime") {
		t.Fatalf("onnxruntime rule with AvgPool2D: error %v", err)
	}
}
