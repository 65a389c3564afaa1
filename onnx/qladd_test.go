package onnx

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/qatgo/qatgo/onnx/onnxpb"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/quant"
)

// TestOnnxruntimeAddTable runs onnxruntime's QLinearAdd (a DequantizeLinear -> Add ->
// QuantizeLinear graph on uint8 data, which onnxruntime fuses) on all 65,536 pairs of input
// levels for several random scales and zero points, and requires quant.OnnxruntimeAddTable to
// give the same level for every pair.
func TestOnnxruntimeAddTable(t *testing.T) {
	rt := findORT(t)
	r := rand.New(rand.NewPCG(7, 7))
	const n = 1 << 16
	x := make([]uint8, 2*n)
	for i := 0; i < n; i++ {
		x[i], x[n+i] = uint8(i>>8), uint8(i)
	}
	for k := 0; k < 6; k++ {
		sA, sB, sC := float32(0.005+0.05*r.Float64()), float32(0.005+0.05*r.Float64()), float32(0.005+0.05*r.Float64())
		zA, zB, zC := r.Int32N(256)-128, r.Int32N(256)-128, r.Int32N(256)-128
		if k == 0 { // the scales of the first residual Add of the PTQ'd DSNet of TestQDQMatchesIntegerRuntime
			sA, sB, sC, zA, zB, zC = 0.014619, 0.022527, 0.017301, -128, 3, -128
		}
		b := newBuilder("qladd")
		b.input("x", onnxpb.TensorProto_UINT8, []int{2 * n})
		axes := b.int64Init("axes", []int{1}, []int64{1})
		for i, name := range []string{"a", "b"} {
			st := b.int64Init(name+".start", []int{1}, []int64{int64(i * n)})
			en := b.int64Init(name+".end", []int{1}, []int64{int64((i + 1) * n)})
			b.node("Slice", name+".slice", []string{"x", st, en, axes}, []string{name + ".q"})
		}
		dq := func(name string, s float32, z int32) string {
			b.node("DequantizeLinear", name+".dq", []string{name + ".q", b.scalarFloat(name+".scale", s), b.uint8Init(name+".zp", nil, []uint8{uint8(z + 128)})}, []string{name + ".f"})
			return name + ".f"
		}
		fa, fb := dq("a", sA, zA), dq("b", sB, zB)
		b.node("Add", "add", []string{fa, fb}, []string{"sum"})
		b.node("QuantizeLinear", "q", []string{"sum", b.scalarFloat("c.scale", sC), b.uint8Init("c.zp", nil, []uint8{uint8(zC + 128)})}, []string{"y"})
		b.output("y", onnxpb.TensorProto_UINT8, []int{n})
		path := filepath.Join(t.TempDir(), fmt.Sprintf("qladd%d.onnx", k))
		if err := WriteFile(path, b.model()); err != nil {
			t.Fatal(err)
		}
		opt := filepath.Join(t.TempDir(), "optimized.onnx")
		res, err := rt.Run(path, ort.Input{Data: x, Dims: []int{1, 2 * n}}, ort.Options{Optimized: opt})
		if err != nil {
			t.Fatal(err)
		}
		om, err := ReadFile(opt)
		if err != nil {
			t.Fatal(err)
		}
		fused := false
		for _, nd := range om.GetGraph().GetNode() {
			fused = fused || nd.GetOpType() == "QLinearAdd"
		}
		if !fused {
			t.Fatalf("onnxruntime did not fuse the Add into QLinearAdd")
		}
		tab, err := quant.OnnxruntimeAddTable(sA, sB, sC, zA, zB, zC, -128, 127)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Uint8) != n {
			t.Fatalf("onnxruntime gave %d %s values, want %d uint8", len(res.Float32)+len(res.Uint8)+len(res.Int8), res.Type, n)
		}
		differ := 0
		for i, u := range res.Uint8 {
			a, bb := int8(uint8(i>>8)-128), int8(uint8(i)-128)
			if got, want := tab[int(uint8(a))<<8|int(uint8(bb))], int8(int32(u)-128); got != want {
				if differ++; differ <= 3 {
					t.Errorf("scales %v %v %v, zero points %d %d %d: levels %d + %d: table %d, onnxruntime %d", sA, sB, sC, zA, zB, zC, a, bb, got, want)
				}
			}
		}
		if differ > 0 {
			t.Errorf("scales %v %v %v: %d of %d pairs differ", sA, sB, sC, differ, n)
		}
	}
}
