package onnx

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/onnx/ort"
	"github.com/qatgo/qatgo/onnx/testnets"
	"github.com/qatgo/qatgo/qat"
)

// syntheticData is a tiny labelled dataset of uniform noise for calibration in benchmarks.
type syntheticData struct{ x []float32 }

func (d syntheticData) Len() int { return len(d.x) / 784 }
func (d syntheticData) Batch(idx []int, x []float32, y []int) {
	for i, j := range idx {
		copy(x[i*784:(i+1)*784], d.x[j*784:(j+1)*784])
		y[i] = 0
	}
}

// BenchmarkQDQVersusOnnxruntime runs the same exported W8A8 model in qatgo's integer runtime (.qm)
// and in onnxruntime (its QDQ ONNX form, int8 kernels) at batch 1 and 256 on one thread, and
// reports us/image for each. onnxruntime is timed inside node over the same number of runs
// (session.run calls, after one warm-up); its figure includes node's per-call overhead.
//
//	go test -run XXX -bench QDQVersusOnnxruntime ./onnx/
func BenchmarkQDQVersusOnnxruntime(b *testing.B) {
	rt, err := ort.Find()
	if err != nil {
		b.Skip(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	calib := syntheticData{x: randomInput(rng, 256*784)}
	ds, _, err := Import(testnets.DSNet(11, false), "dsnet")
	if err != nil {
		b.Fatal(err)
	}
	for _, mc := range []struct {
		name string
		m    *graph.Model
	}{{"ggml-cnn", qat.GGMLCNN(1)}, {"dsnet", ds}} {
		p, err := qat.Calibrate(mc.m, qat.W8A8(), calib, 2, 64, 1)
		if err != nil {
			b.Fatal(err)
		}
		qm, err := export.Lower(p, export.Options{})
		if err != nil {
			b.Fatal(err)
		}
		mp, err := FromQModel(qm)
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(b.TempDir(), mc.name+".onnx")
		if err := WriteFile(path, mp); err != nil {
			b.Fatal(err)
		}
		md, err := infer.Load(qm)
		if err != nil {
			b.Fatal(err)
		}
		for _, batch := range []int{1, 256} {
			x := randomInput(rng, batch*784)
			b.Run(fmt.Sprintf("%s/qatgo/batch%d", mc.name, batch), func(b *testing.B) {
				s := md.NewSessionWith(infer.SessionOptions{Threads: 1})
				defer s.Close()
				b.ResetTimer()
				st := time.Now()
				for i := 0; i < b.N; i++ {
					if _, err := s.Run(x, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(st).Microseconds())/float64(b.N*batch), "us/image")
			})
			b.Run(fmt.Sprintf("%s/onnxruntime/batch%d", mc.name, batch), func(b *testing.B) {
				runs := max(1, b.N)
				res, err := rt.Run(path, ort.Input{Data: x, Dims: []int{batch, 1, 28, 28}}, ort.Options{Threads: 1, Runs: runs})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.UsPerRun/float64(batch), "us/image")
			})
		}
	}
}
