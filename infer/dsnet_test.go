package infer

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// dsCNN is the architecture of onnx/testnets.DSNet as the importer lowers it (BatchNorm folded),
// with random weights: a 3x3 stem conv 1->16 with ReLU6, two depthwise-separable residual blocks
// on 28x28x16 (depthwise 3x3 + ReLU, pointwise 1x1, Add + ReLU), 2x2 max pooling, a strided 3x3
// conv 16->32, average pooling as depthwise convolutions, dense 32->24->10. About 975K MACs per
// image.
func dsCNN(t testing.TB, seed uint64) *qmodel.Model {
	r := rand.New(rand.NewPCG(seed, 97))
	b := qmodel.NewBuilder("dsnet-random")
	x := b.Input("image", qmodel.Uint8, []int{28, 28, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	act := func(z int32) quant.Params { return quant.Params{Scale: float32(0.01 + 0.02*r.Float64()), ZeroPoint: z} }
	conv := func(name string, in qmodel.TensorID, inC, outC, k, stride, groups int, a qmodel.Activation, out quant.Params) qmodel.TensorID {
		bias := make([]int32, outC)
		for i := range bias {
			bias[i] = int32(r.IntN(2001) - 1000)
		}
		pad := k / 2
		return b.Conv2D(name, in, qmodel.Weights{Values: randInt8s(r, outC*k*k*inC/groups, -127, 127), Shape: []int{outC, k, k, inC / groups},
			Scales: randScales(r, outC, 0.002, 0.01)}, bias,
			qmodel.Conv2DOptions{StrideH: stride, StrideW: stride, PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad, Groups: groups, Act: a}, out)
	}
	h := conv("stem", q, 1, 16, 3, 1, 1, qmodel.ActReLU6, act(-128))
	for i, name := range []string{"block1", "block2"} {
		d := conv(name+"/dw", h, 16, 16, 3, 1, 16, qmodel.ActReLU, act(-128))
		p := conv(name+"/pw", d, 16, 16, 1, 1, 1, qmodel.ActNone, act(int32(6-7*i)))
		h = b.Add(name+"/add", h, p, qmodel.ActReLU, act(-128))
	}
	h = b.MaxPool2D("pool", h, qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	h = conv("down", h, 16, 32, 3, 2, 1, qmodel.ActReLU, act(-128))
	h = b.AvgPool2D("avg", h, qmodel.PoolOptions{KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1})
	h = b.AvgPool2D("gap", h, qmodel.PoolOptions{KernelH: 5, KernelW: 5})
	f := b.Reshape("flatten", h, []int{32})
	f = b.FullyConnected("fc1", f, qmodel.Weights{Values: randInt8s(r, 24*32, -127, 127), Shape: []int{24, 32}, Scales: randScales(r, 24, 0.003, 0.007)},
		nil, qmodel.ActReLU, act(-128))
	f = b.FullyConnected("fc2", f, qmodel.Weights{Values: randInt8s(r, 10*24, -127, 127), Shape: []int{10, 24}, Scales: randScales(r, 10, 0.002, 0.004)},
		nil, qmodel.ActNone, act(1))
	b.Output(b.Dequantize("logits", f))
	return build(t, b)
}

// BenchmarkDSNet is BenchmarkMNISTCNN for the depthwise-separable residual CNN (dsCNN).
func BenchmarkDSNet(b *testing.B) {
	benchCNN(b, dsCNN)
}

// TestDSNetPaths runs the depthwise-separable CNN on every kernels path, one and two threads,
// batch 1 and 19, against the portable path (the reference kernels), and checks every op's
// output against the float reference (within 1 LSB) on the current path.
func TestDSNetPaths(t *testing.T) {
	defer kernels.SetPath(kernels.Path())
	m := dsCNN(t, 5)
	md, err := Load(m)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 19
	r := rand.New(rand.NewPCG(7, 8))
	in := make([]byte, batch*md.InputSize())
	for i := range in {
		in[i] = byte(r.IntN(256))
	}
	if err := kernels.SetPath("portable"); err != nil {
		t.Fatal(err)
	}
	ref := md.NewSessionWith(SessionOptions{Threads: 1})
	want, err := ref.RunUint8(in, batch)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]float32(nil), want...)
	ref.Close()
	distinct := map[float32]bool{}
	for _, v := range want {
		distinct[v] = true
	}
	if len(distinct) < 10 {
		t.Fatalf("degenerate reference output: %d distinct values", len(distinct))
	}
	for _, p := range kernels.Paths() {
		if err := kernels.SetPath(p); err != nil {
			t.Fatal(err)
		}
		for _, threads := range []int{1, 2} {
			s := md.NewSessionWith(SessionOptions{Threads: threads})
			got, err := s.RunUint8(in, batch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("path %s threads %d: outputs differ from the portable path", p, threads)
			}
			one, err := s.RunUint8(in[:md.InputSize()], 1)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(one, want[:md.OutputSize()]) {
				t.Errorf("path %s threads %d: batch-1 output differs", p, threads)
			}
			s.Close()
		}
	}
}
