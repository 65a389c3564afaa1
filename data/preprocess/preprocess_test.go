package preprocess

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
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

// TestParseValuesChannels: a channel count outside 1..MaxChannels is an error (0 once returned
// no values, a negative count panicked in make and a huge one tried to allocate it).
func TestParseValuesChannels(t *testing.T) {
	for _, c := range []int{0, -1, MaxChannels + 1, 1 << 40} {
		if v, err := ParseValues("1", c); err == nil {
			t.Errorf("ParseValues(\"1\", %d) = %v", c, v)
		}
	}
	if v, err := ParseValues("1", MaxChannels); err != nil || len(v) != MaxChannels {
		t.Errorf("ParseValues(\"1\", %d) = %v, %v", MaxChannels, v, err)
	}
}

// FuzzParseValues: any string and channel count give values or an error, never a panic; accepted
// values are channels finite float32s, the single value repeated or one per comma-separated part.
func FuzzParseValues(f *testing.F) {
	for _, s := range []string{"0.1307", " 0.1, 0.2,0.4", "0.5,0.5", "NaN", "1e39", "-0", "", ",", "0x1p-3", "1_0"} {
		for _, c := range []int{1, 3, 4} {
			f.Add(s, c)
		}
	}
	f.Add("1", 0)
	f.Add("1", -1)
	f.Add("1", 1<<40)
	f.Fuzz(func(t *testing.T, v string, channels int) {
		got, err := ParseValues(v, channels)
		if err != nil {
			return
		}
		parts := strings.Split(v, ",")
		if channels < 1 || channels > MaxChannels || len(got) != channels || (len(parts) != 1 && len(parts) != channels) {
			t.Fatalf("ParseValues(%q, %d) = %v", v, channels, got)
		}
		for c, g := range got {
			want, err := strconv.ParseFloat(strings.TrimSpace(parts[min(c, len(parts)-1)]), 32)
			if err != nil || float32(want) != g || math.IsInf(float64(g), 0) || math.IsNaN(float64(g)) {
				t.Fatalf("ParseValues(%q, %d)[%d] = %v, part parses as %v (%v)", v, channels, c, g, want, err)
			}
		}
	})
}

// FuzzFromMeta: any normalisation metadata and input shape give a Spec or an error, never a
// panic; an accepted Spec validates, has the shape's sizes and survives SetMeta/FromMeta.
func FuzzFromMeta(f *testing.F) {
	f.Add("0.1307", "0.3081", true, true, 28, 28, 1, uint8(3), true)
	f.Add("0.5", " 0.1, 0.2,0.4", true, true, 3, 8, 6, uint8(3), false)
	f.Add("", "", false, false, 784, 0, 0, uint8(1), false)
	f.Add("0.5,0.5", "1", true, true, 3, 8, 6, uint8(3), false)
	f.Add("0", "0", true, true, 1, 2, 2, uint8(3), false)
	f.Add("NaN", "1e-45", true, true, 1, 2, 2, uint8(3), false)
	f.Add("", "", false, false, 1<<40, 1<<40, 4, uint8(3), false)
	f.Add("", "", false, false, -16, 0, 0, uint8(1), false)
	f.Add("", "", false, false, 2, 2, 0, uint8(2), false)
	f.Fuzz(func(t *testing.T, mean, std string, haveMean, haveStd bool, a, b, c int, rank uint8, hwc bool) {
		meta := map[string]string{}
		if haveMean {
			meta[MetaMean] = mean
		}
		if haveStd {
			meta[MetaStd] = std
		}
		shape := []int{a, b, c}[:int(rank)%4]
		s, err := FromMeta(meta, shape, hwc)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("FromMeta(%v, %v, %v) accepted %v: %v", meta, shape, hwc, s, err)
		}
		if s.Size() != s.Channels*s.Height*s.Width || s.Size() < 1 {
			t.Fatalf("size %d of %v", s.Size(), s)
		}
		switch {
		case len(shape) == 3 && hwc && (s.Height != a || s.Width != b || s.Channels != c),
			len(shape) == 3 && !hwc && (s.Channels != a || s.Height != b || s.Width != c),
			len(shape) == 1 && (s.Channels != 1 || s.Height*s.Width != a),
			len(shape) == 2 || len(shape) == 0:
			t.Fatalf("shape %v (hwc %v) gave %v", shape, hwc, s)
		}
		out := map[string]string{}
		s.SetMeta(out)
		back, err := FromMeta(out, shape, hwc)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip of %v through %v: %v (%v)", s, out, back, err)
		}
	})
}
