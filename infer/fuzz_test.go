package infer

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// repairCRCs recomputes the checksums of a qmodel file (layout in the qmodel package doc) so that
// fuzzed bytes reach validation instead of failing the checksum.
func repairCRCs(b []byte) {
	const headerFixed, entry, sections = 16, 32, 4
	const headerLen = headerFixed + sections*entry
	if len(b) < headerLen+4 {
		return
	}
	tab := crc32.MakeTable(crc32.Castagnoli)
	for i := 0; i < sections; i++ {
		e := b[headerFixed+i*entry:]
		off, n := binary.LittleEndian.Uint64(e[8:]), binary.LittleEndian.Uint64(e[16:])
		if off <= uint64(len(b)) && n <= uint64(len(b))-off {
			binary.LittleEndian.PutUint32(e[24:], crc32.Checksum(b[off:off+n], tab))
		}
	}
	binary.LittleEndian.PutUint32(b[headerLen:], crc32.Checksum(b[:headerLen], tab))
}

// fuzzMaxWork is the per-sample work budget (LoadOptions.MaxWork) under which FuzzLoadRun loads
// models: about 4 million units, milliseconds per sample.
const fuzzMaxWork = 1 << 22

// FuzzLoadRun checks the promise behind qmodel's validation: any model that decodes and loads
// (within the work budget fuzzMaxWork) runs without a panic or an error, whatever its ops, shapes
// and parameters.
//
// The seeds are small models (a few hundred bytes to about 1.5 KB) that together hold every CNN op
// kind, every input type, labels and metadata: the fuzzer minimizes each new interesting input
// for up to a minute, one execution per byte tried, so a large seed (the MNIST CNN, about 11 KB)
// kept it minimizing instead of fuzzing.
func FuzzLoadRun(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	var seeds []*qmodel.Model
	// A small model with every op kind (float input).
	b := qmodel.NewBuilder("all")
	x := b.Input("x", qmodel.Float32, []int{5, 5, 2}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.05, ZeroPoint: 1})
	c := b.Conv2D("c", q, qmodel.Weights{Values: randInt8s(r, 2*9*2, -127, 127), Shape: []int{2, 3, 3, 2}, Scales: []float32{0.01, 0.02}},
		[]int32{3, -3}, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU6}, quant.Params{Scale: 0.04, ZeroPoint: -10})
	d := b.Conv2D("d", c, qmodel.Weights{Values: randInt8s(r, 2*9, -7, 7), Shape: []int{2, 3, 3, 1}, Scales: []float32{0.1}, Int4: true},
		nil, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 2}, quant.Params{Scale: 0.05, ZeroPoint: 0})
	a := b.Add("a", c, d, qmodel.ActReLU, quant.Params{Scale: 0.06, ZeroPoint: -5})
	p := b.AvgPool2D("p", a, qmodel.PoolOptions{KernelH: 2, KernelW: 2, StrideH: 1, StrideW: 1, PadBottom: 1, PadRight: 1})
	m := b.MaxPool2D("m", p, qmodel.PoolOptions{KernelH: 5, KernelW: 5})
	fl := b.Reshape("f", m, []int{2})
	fc := b.FullyConnected("fc", fl, qmodel.Weights{Values: randInt8s(r, 6, -127, 127), Shape: []int{3, 2}, Scales: []float32{0.1}}, []int32{1, 2, 3}, qmodel.ActNone, quant.Params{Scale: 0.1})
	b.Output(b.Dequantize("y", b.Softmax("s", fc)))
	seeds = append(seeds, build(f, b))
	// The MNIST CNN's structure at 8x8 (uint8 image, conv+ReLU+maxpool twice, the 1->8 block
	// that the runtime fuses, a dense layer), with labels, producer and metadata.
	b = qmodel.NewBuilder("u8-conv-pool")
	b.SetProducer("FuzzLoadRun seed")
	b.SetLabels([]string{"a", "b", "c"})
	b.SetMeta("dataset", "none")
	x = b.Input("image", qmodel.Uint8, []int{8, 8, 1}, qmodel.PerTensor(1.0/255, 0))
	q = b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	c = b.Conv2D("conv1", q, qmodel.Weights{Values: randInt8s(r, 8*9, -127, 127), Shape: []int{8, 3, 3, 1}, Scales: randScales(r, 8, 0.003, 0.006)},
		[]int32{5, -5, 10, -10, 0, 1, 2, 3}, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU}, quant.Params{Scale: 0.01, ZeroPoint: -128})
	p = b.MaxPool2D("pool1", c, qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	c = b.Conv2D("conv2", p, qmodel.Weights{Values: randInt8s(r, 4*9*8, -127, 127), Shape: []int{4, 3, 3, 8}, Scales: randScales(r, 4, 0.002, 0.004)},
		[]int32{-7, 7, 0, 100}, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU}, quant.Params{Scale: 0.01, ZeroPoint: -128})
	p = b.MaxPool2D("pool2", c, qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	fl = b.Reshape("flatten", p, []int{16})
	fc = b.FullyConnected("dense", fl, qmodel.Weights{Values: randInt8s(r, 3*16, -127, 127), Shape: []int{3, 16}, Scales: randScales(r, 3, 0.001, 0.002)},
		[]int32{1, -1, 0}, qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(b.Dequantize("logits", fc))
	seeds = append(seeds, build(f, b))
	// Strided and depthwise (grouped) convolutions on an int8 input (RunInt8 too): a 3x3 with
	// strides 2 and 1, an int4 depthwise 3x3 with stride 2, a per-tensor 1x1 with stride 2, an
	// average pool over the rest and an int8 output.
	b = qmodel.NewBuilder("strided-depthwise")
	x = b.Input("x", qmodel.Int8, []int{7, 7, 4}, qmodel.PerTensor(0.05, 3))
	c = b.Conv2D("strided", x, qmodel.Weights{Values: randInt8s(r, 4*9*4, -127, 127), Shape: []int{4, 3, 3, 4}, Scales: randScales(r, 4, 0.005, 0.01)},
		[]int32{1, 2, 3, 4}, qmodel.Conv2DOptions{StrideH: 2, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, quant.Params{Scale: 0.05, ZeroPoint: 2}) // 4x7x4
	d = b.Conv2D("depthwise", c, qmodel.Weights{Values: randInt8s(r, 4*9, -7, 7), Shape: []int{4, 3, 3, 1}, Scales: randScales(r, 4, 0.05, 0.1), Int4: true},
		nil, qmodel.Conv2DOptions{StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 4, Act: qmodel.ActReLU}, quant.Params{Scale: 0.04, ZeroPoint: -128}) // 2x4x4
	c = b.Conv2D("pointwise", d, qmodel.Weights{Values: randInt8s(r, 6*4, -127, 127), Shape: []int{6, 1, 1, 4}, Scales: []float32{0.01}},
		[]int32{0, 1, -1, 2, -2, 3}, qmodel.Conv2DOptions{StrideH: 2, StrideW: 2}, quant.Params{Scale: 0.03, ZeroPoint: -3}) // 1x2x6
	p = b.AvgPool2D("pool", c, qmodel.PoolOptions{KernelH: 1, KernelW: 2})
	b.Output(b.Reshape("y", p, []int{6}))
	seeds = append(seeds, build(f, b))
	for _, m := range seeds {
		enc, err := qmodel.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		// A seed that does not load under the budget would exercise the decoder only.
		if _, err := LoadWith(m, LoadOptions{MaxWork: fuzzMaxWork}); err != nil {
			f.Fatalf("seed %s: %v", m.Name, err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = append([]byte(nil), data...)
		repairCRCs(data)
		m, err := qmodel.Decode(data)
		if err != nil {
			return
		}
		// No skipping of valid but expensive models here: the runtime's own work budget, set
		// small so that every input runs in milliseconds, is what refuses them.
		md, err := LoadWith(m, LoadOptions{MaxWork: fuzzMaxWork})
		if err != nil {
			return
		}
		s := md.NewSession()
		for _, batch := range []int{1, 3} {
			switch md.InputType() {
			case qmodel.Uint8:
				_, err = s.RunUint8(make([]byte, md.InputSize()*batch), batch)
			default:
				_, err = s.Run(make([]float32, md.InputSize()*batch), batch)
			}
			if err != nil {
				t.Fatalf("a loaded model failed to run: %v", err)
			}
		}
		if _, _, err := md.Int8Params(); err == nil {
			in := make([]int8, md.InputSize())
			if _, err := s.RunInt8(in, 1); err != nil {
				t.Fatalf("RunInt8: %v", err)
			}
		}
	})
}
