// Command dsnet writes a float ONNX CNN that qatgo did not produce: a depthwise-separable residual
// network (MobileNet-like blocks with identity shortcuts) built node by node with the ONNX protobuf
// types (package onnx/testnets), random He-normal weights, random BatchNorm statistics. It is the
// input of the "bring your own model" path:
//
//	go run ./examples/dsnet -o dsnet.onnx
//	go run ./cmd/qatgo import dsnet.onnx -o dsnet.ckpt
//	go run ./examples/mnist -model onnx:dsnet.onnx -data fashion
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/qatgo/qatgo/internal/flagcheck"
	"github.com/qatgo/qatgo/onnx"
	"github.com/qatgo/qatgo/onnx/testnets"
)

func main() {
	out := flag.String("o", "dsnet.onnx", "output ONNX file")
	seed := flag.Uint64("seed", 1, "weight seed")
	softmax := flag.Bool("softmax", false, "end the graph with Softmax")
	flag.Parse()
	if err := flagcheck.First(flagcheck.NoArgs(flag.Args()), flagcheck.NotEmpty("o", *out)); err != nil {
		fmt.Fprintln(os.Stderr, "dsnet:", err)
		os.Exit(2)
	}
	if err := onnx.WriteFile(*out, testnets.DSNet(*seed, *softmax)); err != nil {
		fmt.Fprintln(os.Stderr, "dsnet:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", *out)
}
