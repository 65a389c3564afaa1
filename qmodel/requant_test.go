package qmodel

import (
	"strings"
	"testing"
)

func TestRequant(t *testing.T) {
	for _, tc := range []struct {
		meta map[string]string
		want string
		err  string
	}{
		{nil, RequantDefault, ""},
		{map[string]string{MetaRequant: "default"}, RequantDefault, ""},
		{map[string]string{MetaRequant: "onnxruntime"}, RequantOnnxruntime, ""},
		{map[string]string{MetaRequant: "tflite"}, "", `unknown requantization rule "tflite"`},
	} {
		m := &Model{Meta: tc.meta}
		got, err := m.Requant()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.meta, err, tc.err)
			}
			if verr := m.Validate(); verr == nil || !strings.Contains(verr.Error(), tc.err) {
				t.Errorf("%v: Validate gave %v", tc.meta, verr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.meta, got, err, tc.want)
		}
	}
}
