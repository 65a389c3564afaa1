#!/bin/sh
# Regenerates onnx.pb.go from ONNX's onnx.proto (ONNX 1.12, as Debian's libonnx-dev installs it).
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-go at the version of
# google.golang.org/protobuf in go.mod:
#   apt-get install -y libonnx-dev protobuf-compiler
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.28.0
# ONNX_INCLUDE overrides the folder that holds onnx/onnx.proto (default /usr/include).
set -eu
cd "$(dirname "$0")"
inc="${ONNX_INCLUDE:-/usr/include}"
out="${1:-.}"
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I"$inc" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go_opt=Monnx/onnx.proto=github.com/qatgo/qatgo/onnx/onnxpb \
	onnx/onnx.proto
mv "$out/onnx/onnx.pb.go" "$out/onnx.pb.go"
rmdir "$out/onnx"
