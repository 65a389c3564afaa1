package export

import (
	"errors"
	"strings"
	"testing"
)

// TestReportCheck applies Check to hand-built reports: defaults for zero fields, negative shares
// turn a check off, and the error names the first failing layer.
func TestReportCheck(t *testing.T) {
	rep := &Report{Model: "m", Batch: 1000, Agree: 995, Agreement: 0.995, Layers: []LayerParity{
		{Site: "conv1.out", Tensor: "conv1", Elements: 100, MaxLSB: 1, Within1: 1, LocalMaxLSB: 1},
		{Site: "conv2.out", Tensor: "conv2", Elements: 100, MaxLSB: 3, Within1: 0.98, LocalMaxLSB: 2},
	}}
	for _, tc := range []struct {
		name string
		th   Thresholds
		want string // "" = passes
	}{
		{"defaults", Thresholds{}, `layer "conv2.out" (tensor "conv2"): 98.0000% of 100 elements within 1 LSB, want >= 99.0000%`},
		{"within1 relaxed", Thresholds{MinWithin1: 0.98}, ""},
		{"within1 off", Thresholds{MinWithin1: -1}, ""},
		{"agreement strict", Thresholds{MinWithin1: -1, MinAgreement: 0.999}, "predictions agree on 995 of 1000"},
		{"agreement off", Thresholds{MinWithin1: -1, MinAgreement: -1}, ""},
		{"max LSB", Thresholds{MinWithin1: -1, MaxLSB: 2}, `layer "conv2.out" (tensor "conv2"): max difference 3 LSB > 2`},
		{"max local LSB", Thresholds{MinWithin1: -1, MaxLocalLSB: 1}, `layer "conv2.out" (tensor "conv2") alone`},
	} {
		err := rep.Check(tc.th)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want a pass", tc.name, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrParity) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want ErrParity containing %q", tc.name, err, tc.want)
		}
	}
}

// TestPermuteCHW checks the layout change against a hand-written case and the round trip.
func TestPermuteCHW(t *testing.T) {
	// Two examples of shape (C=2, H=1, W=3): channel planes [a0 a1 a2][b0 b1 b2].
	chw := []float32{1, 2, 3, 10, 20, 30, 4, 5, 6, 40, 50, 60}
	want := []float32{1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60}
	shape := []int{2, 1, 3}
	got := toNHWC(chw, 2, shape)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("toNHWC = %v, want %v", got, want)
		}
	}
	if h := hwcOrder(chw[:6], shape); h[1] != 10 || h[4] != 3 {
		t.Errorf("hwcOrder = %v", h)
	}
	back := toNCHW(got, 2, shape)
	for i := range chw {
		if back[i] != chw[i] {
			t.Fatalf("toNCHW(toNHWC(x)) = %v, want %v", back, chw)
		}
	}
	if v := toNHWC([]float32{1, 2}, 1, []int{2}); v[0] != 1 || v[1] != 2 {
		t.Errorf("vector copy = %v", v)
	}
}
