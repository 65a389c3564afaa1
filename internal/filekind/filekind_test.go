package filekind

import (
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		head []byte
		want string // substring of the description; "" means none
	}{
		{[]byte("QATGOCK1\x10\x00\x00\x00"), "qatgo checkpoint"},
		{[]byte("QATGOMDL\x01\x00"), ".qm"},
		{[]byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00"), "GGUF"},
		{[]byte("PK\x03\x04\x14\x00"), "zip"},
		{[]byte("\x89HDF\r\n\x1a\n"), "HDF5"},
		{[]byte("\x89PNG\r\n\x1a\n\x00"), "PNG"},
		{[]byte("\xff\xd8\xff\xe0"), "JPEG"},
		{[]byte("\x1c\x00\x00\x00TFL3"), "TensorFlow Lite"},
		{[]byte("\x80\x02}q\x00"), "pickle"},
		{[]byte("\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"), "safetensors"},
		{[]byte("\x08\x08\x12\x07pytorch"), "ONNX"}, // ir_version 8, producer_name
		{[]byte("hello world"), ""},
		{[]byte{0x08}, ""},
		{nil, ""},
		{[]byte("\xff\xff\xff\xff\xff\xff\xff\xff{"), ""}, // a huge "header length": not safetensors
	} {
		got := Describe(c.head)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("Describe(%q) = %q, want one containing %q", c.head, got, c.want)
		}
	}
	if Detect([]byte("GGUF\x03")) != GGUF || Detect(nil) != Unknown || Kind(-1).String() != "" || Kind(99).String() != "" {
		t.Error("Detect or String wrong on a GGUF head, nil or out-of-range kinds")
	}
}
