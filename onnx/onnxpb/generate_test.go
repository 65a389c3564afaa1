package onnxpb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestGeneratedIsReproducible regenerates onnx.pb.go with generate.sh and requires the result to
// equal the committed file byte for byte. It skips when the generator tools are absent (CI
// installs them, so there it runs).
func TestGeneratedIsReproducible(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler libonnx-dev)")
	}
	gobin, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Skipf("go env GOPATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(string(bytes.TrimSpace(gobin)), "bin", "protoc-gen-go")); err != nil {
		if _, err := exec.LookPath("protoc-gen-go"); err != nil {
			t.Skip("protoc-gen-go not installed (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.28.0)")
		}
	}
	inc := os.Getenv("ONNX_INCLUDE")
	if inc == "" {
		inc = "/usr/include"
	}
	if _, err := os.Stat(filepath.Join(inc, "onnx", "onnx.proto")); err != nil {
		t.Skipf("onnx.proto not installed under %s (apt-get install libonnx-dev)", inc)
	}
	dir := t.TempDir()
	cmd := exec.Command("./generate.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "onnx.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("onnx.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("onnx.pb.go differs from a fresh generation: run go generate ./onnx/onnxpb and commit")
	}
}

// TestRoundTrip checks that the generated types encode and decode a small model losslessly.
func TestRoundTrip(t *testing.T) {
	m := &ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &GraphProto{
			Name: proto.String("g"),
			Node: []*NodeProto{{OpType: proto.String("Relu"), Input: []string{"x"}, Output: []string{"y"}}},
			Initializer: []*TensorProto{{Name: proto.String("w"), Dims: []int64{2},
				DataType: proto.Int32(int32(TensorProto_FLOAT)), FloatData: []float32{1.5, -2}}},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back ModelProto
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, &back) {
		t.Fatalf("round trip changed the model:\n%v\n%v", m, &back)
	}
	if got := back.GetGraph().GetInitializer()[0].GetFloatData()[1]; got != -2 {
		t.Fatalf("float data %v", got)
	}
}
