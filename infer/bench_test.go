package infer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// BenchmarkMNISTCNN measures the ggml MNIST CNN architecture in int8 (random weights) at batch 1
// and batch 256 and reports microseconds per image (ggml's f32 reference on this machine: about
// 118 us/image). The "ops" variants run every op on its own (no fused convolutions), as before
// the fusion, for a before/after ratio within one run.
func BenchmarkMNISTCNN(b *testing.B) {
	benchCNN(b, mnistCNN)
}

func benchCNN(b *testing.B, mk func(testing.TB, uint64) *qmodel.Model) {
	md, err := Load(mk(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	disableFusion = true
	unfused, err := Load(mk(b, 1))
	disableFusion = false
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		batch, threads int
		ops            bool
	}{{1, 1, false}, {256, 1, false}, {256, 2, false}, {1, 1, true}, {256, 1, true}} {
		name := fmt.Sprintf("batch%d/threads%d", tc.batch, tc.threads)
		m := md
		if tc.ops {
			name, m = "ops/"+name, unfused
		}
		b.Run(name, func(b *testing.B) {
			s := m.NewSessionWith(SessionOptions{Threads: tc.threads})
			defer s.Close()
			imgs := randImages(1, tc.batch)
			if _, err := s.RunUint8(imgs, tc.batch); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, start := processCPU(), time.Now()
			for i := 0; i < b.N; i++ {
				s.RunUint8(imgs, tc.batch)
			}
			el, cpu := time.Since(start), processCPU()-cpu0
			n := float64(b.N * tc.batch)
			b.ReportMetric(float64(el.Nanoseconds())/1e3/n, "us/image")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/n, "cpu-us/image")
			// CPU time over wall time: about 2 when a two-thread run had both cores to itself;
			// near 1 means the second core was busy with other work (or the worker idle), so
			// the run's wall time says nothing about two-thread scaling.
			b.ReportMetric(float64(cpu)/float64(el), "cores")
			b.ReportMetric(0, "ns/op")
			b.Logf("kernels path %s (AMX %v)", kernels.Path(), kernels.AMX())
		})
	}
}

// bnCNN is the architecture of the default MNIST example (qat.BNCNN) with random weights, as
// export lowers it (BatchNorm folded into the convolutions): three 3x3 conv+ReLU blocks of 16,
// 32 and 64 channels, max pooling after the first two, dense 3136->10. About 2M MACs per image.
func bnCNN(t testing.TB, seed uint64) *qmodel.Model {
	r := rand.New(rand.NewPCG(seed, 98))
	b := qmodel.NewBuilder("bn-cnn-random")
	x := b.Input("image", qmodel.Uint8, []int{28, 28, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	conv := func(name string, in qmodel.TensorID, inC, outC int) qmodel.TensorID {
		bias := make([]int32, outC)
		for i := range bias {
			bias[i] = int32(r.IntN(2001) - 1000)
		}
		return b.Conv2D(name, in, qmodel.Weights{Values: randInt8s(r, outC*9*inC, -127, 127), Shape: []int{outC, 3, 3, inC}, Scales: randScales(r, outC, 0.001, 0.004)},
			bias, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU}, quant.Params{Scale: 0.02, ZeroPoint: -128})
	}
	p1 := b.MaxPool2D("pool1", conv("conv1", q, 1, 16), qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	p2 := b.MaxPool2D("pool2", conv("conv2", p1, 16, 32), qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	c3 := conv("conv3", p2, 32, 64)
	f := b.Reshape("flatten", c3, []int{7 * 7 * 64})
	d := b.FullyConnected("fc", f, qmodel.Weights{Values: randInt8s(r, 10*3136, -127, 127), Shape: []int{10, 3136}, Scales: randScales(r, 10, 0.0005, 0.001)},
		nil, qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(b.Dequantize("logits", d))
	return build(t, b)
}

// BenchmarkBNCNN is BenchmarkMNISTCNN for the default example's BN CNN architecture.
func BenchmarkBNCNN(b *testing.B) {
	benchCNN(b, bnCNN)
}

// TestWriteMNISTCNN writes the random-weight MNIST CNN to the file named by QATGO_WRITE_MNIST_CNN
// (for trying the qatgo command without a trained model).
func TestWriteMNISTCNN(t *testing.T) {
	path := os.Getenv("QATGO_WRITE_MNIST_CNN")
	if path == "" {
		t.Skip("set QATGO_WRITE_MNIST_CNN=path to write the model")
	}
	if err := qmodel.WriteFile(path, mnistCNN(t, 1)); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOps reports the per-op time of the MNIST CNN, the BN CNN and DSNet at batch 256 on one thread
// (the breakdown `qatgo bench` prints), in ns per image.
func BenchmarkOps(b *testing.B) {
	for _, tc := range []struct {
		name string
		mk   func(testing.TB, uint64) *qmodel.Model
	}{{"MNISTCNN", mnistCNN}, {"BNCNN", bnCNN}, {"DSNet", dsCNN}} {
		b.Run(tc.name, func(b *testing.B) {
			md, err := Load(tc.mk(b, 1))
			if err != nil {
				b.Fatal(err)
			}
			const batch = 256
			s := md.NewSession()
			imgs := randImages(1, batch)
			s.RunUint8(imgs, batch)
			s.EnableProfile(true)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.RunUint8(imgs, batch)
			}
			b.StopTimer()
			for _, st := range s.Profile() {
				b.ReportMetric(float64(st.Total.Nanoseconds())/float64(st.Calls*batch), st.Name+"-ns/image")
			}
		})
	}
}
