package preprocess

import (
	"fmt"
	"math"
	"testing"
)

func TestFromMeta(t *testing.T) {
	for _, tc := range []struct {
		meta  map[string]string
		shape []int
		hwc   bool
		want  string // Spec.String, or "error"
	}{
		{nil, []int{1, 28, 28}, false, "28x28x1, mean [0] std [1]"},
		{nil, []int{784}, false, "28x28x1, mean [0] std [1]"},
		{nil, []int{10}, false, "1x10x1, mean [0] std [1]"},
		{map[string]string{MetaMean: "0.1307", MetaStd: "0.3081"}, []int{28, 28, 1}, true, "28x28x1, mean [0.1307] std [0.3081]"},
		{map[string]string{MetaMean: "0.5", MetaStd: " 0.1, 0.2,0.4"}, []int{3, 8, 6}, false, "8x6x3, mean [0.5 0.5 0.5] std [0.1 0.2 0.4]"},
		{map[string]string{MetaMean: "0.5,0.5"}, []int{3, 8, 6}, false, "error"},
		{map[string]string{MetaStd: "0"}, []int{1, 2, 2}, false, "error"},
		{map[string]string{MetaStd: "-1"}, []int{1, 2, 2}, false, "error"},
		{map[string]string{MetaMean: "NaN"}, []int{1, 2, 2}, false, "error"},
		{map[string]string{MetaMean: "x"}, []int{1, 2, 2}, false, "error"},
		{nil, []int{5, 2, 2}, false, "error"},
		{nil, []int{2, 2}, false, "error"},
	} {
		s, err := FromMeta(tc.meta, tc.shape, tc.hwc)
		got := "error"
		if err == nil {
			got = s.String()
		}
		if got != tc.want {
			t.Errorf("FromMeta(%v, %v, %v) = %s (%v), want %s", tc.meta, tc.shape, tc.hwc, got, err, tc.want)
		}
	}
}

func TestSetMetaRoundTrip(t *testing.T) {
	s, _ := New(3, 4, 5)
	s.Mean = []float32{0.485, 0.456, 0.406}
	s.Std = []float32{0.229, 0.224, 0.225}
	meta := map[string]string{"other": "x"}
	s.SetMeta(meta)
	back, err := FromMeta(meta, []int{3, 4, 5}, false)
	if err != nil || fmt.Sprint(back) != fmt.Sprint(s) || meta["other"] != "x" {
		t.Fatalf("round trip: %v (%v), want %v; meta %v", back, err, s, meta)
	}
	id, _ := New(3, 4, 5)
	id.SetMeta(meta)
	if _, ok := meta[MetaMean]; ok || !id.Identity() || s.Identity() {
		t.Fatalf("identity SetMeta left %v", meta)
	}
}

// TestLayouts checks HWC and CHW against the formula on a 2x2 RGB image.
func TestLayouts(t *testing.T) {
	s, _ := New(3, 2, 2)
	s.Mean = []float32{0.5, 0, 1}
	s.Std = []float32{0.5, 2, 1}
	px := []byte{0, 51, 102, 153, 204, 255, 10, 20, 30, 40, 50, 60} // HWC
	hwc := make([]float32, 12)
	chw := make([]float32, 12)
	s.HWC(hwc, px)
	s.CHW(chw, px)
	for i, p := range px {
		c, pix := i%3, i/3
		want := (float64(p)/255 - float64(s.Mean[c])) / float64(s.Std[c])
		if math.Abs(float64(hwc[i])-want) > 1e-6 || math.Abs(float64(chw[c*4+pix])-want) > 1e-6 {
			t.Fatalf("element %d: hwc %v chw %v, want %v", i, hwc[i], chw[c*4+pix], want)
		}
	}
	if _, err := NewSet(s, px, []uint8{0, 1}); err == nil {
		t.Error("NewSet accepted 12 bytes for two 12-byte images")
	}
}
