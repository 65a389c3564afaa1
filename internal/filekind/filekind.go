// Package filekind names the format of a file from its first bytes, for error messages that
// tell a user what a file they passed seems to be when it is not what a command reads.
// It imports only the standard library (the deploy path uses it).
package filekind

import (
	"bytes"
	"encoding/binary"
)

// Kind is a file format recognised by its first bytes.
type Kind int

// The kinds Detect knows.
const (
	Unknown     Kind = iota
	Checkpoint       // qatgo checkpoint (graph.SaveCheckpoint)
	QModel           // qatgo integer model (.qm)
	GGUF             // llama.cpp/ollama GGUF
	ONNX             // heuristic: a protobuf that starts with a small ir_version field
	Zip              // zip archive (PyTorch .pt/.pth)
	HDF5             // HDF5 (Keras .h5)
	PNG              // PNG image
	JPEG             // JPEG image
	TFLite           // TensorFlow Lite flatbuffer
	Pickle           // Python pickle
	Safetensors      // safetensors
)

var names = [...]string{
	Unknown:     "",
	Checkpoint:  "a qatgo checkpoint",
	QModel:      "a qatgo integer model file (.qm)",
	GGUF:        "a GGUF file (llama.cpp/ollama)",
	ONNX:        "probably an ONNX model (a protobuf that starts with an ir_version)",
	Zip:         "a zip archive (a PyTorch .pt/.pth file is one)",
	HDF5:        "an HDF5 file (e.g. Keras .h5)",
	PNG:         "a PNG image",
	JPEG:        "a JPEG image",
	TFLite:      "a TensorFlow Lite model",
	Pickle:      "a Python pickle (e.g. a legacy PyTorch checkpoint)",
	Safetensors: "a safetensors file",
}

// String describes the kind for a message ("a GGUF file (llama.cpp/ollama)"); "" for Unknown.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(names) {
		return ""
	}
	return names[k]
}

// Detect returns the kind of file whose first bytes are head, or Unknown.
func Detect(head []byte) Kind {
	has := func(sig string) bool { return bytes.HasPrefix(head, []byte(sig)) }
	switch {
	case has("QATGOCK1"):
		return Checkpoint
	case has("QATGOMDL"):
		return QModel
	case has("GGUF"):
		return GGUF
	case has("PK\x03\x04"):
		return Zip
	case has("\x89HDF\r\n\x1a\n"):
		return HDF5
	case has("\x89PNG\r\n\x1a\n"):
		return PNG
	case has("\xff\xd8\xff"):
		return JPEG
	case len(head) >= 8 && string(head[4:8]) == "TFL3":
		return TFLite
	case len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		return Pickle
	case len(head) >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) < 100<<20:
		return Safetensors
	case len(head) >= 2 && head[0] == 0x08 && head[1] >= 1 && head[1] <= 15:
		return ONNX
	}
	return Unknown
}

// Describe is Detect(head).String(): a short description of the file's format, or "".
func Describe(head []byte) string { return Detect(head).String() }
