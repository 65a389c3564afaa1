package infer

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// BenchmarkMNISTCNN measures the ggml MNIST CNN architecture in int8 (random weights) at batch 1
// and batch 256 and reports microseconds per image (ggml's f32 reference on this machine: about
// 118 us/image). The "ops" variants run every op on its own (no fused convolutions), as before
// the fusion, for a before/after ratio within one run.
func BenchmarkMNISTCNN(b *testing.B) {
	md, err := Load(mnistCNN(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	disableFusion = true
	unfused, err := Load(mnistCNN(b, 1))
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
			b.ReportMetric(0, "ns/op")
			b.Logf("kernels path %s", kernels.Path())
		})
	}
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

// BenchmarkOps reports the per-op time of the MNIST CNN at batch 64 (the breakdown `qatgo bench` prints).
func BenchmarkOps(b *testing.B) {
	md, err := Load(mnistCNN(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
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
}
