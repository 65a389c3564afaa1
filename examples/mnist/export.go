package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/qatgo/qatgo/data/mnist"
	"github.com/qatgo/qatgo/export"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/sirupsen/logrus"
)

// exportAndRun lowers the prepared model to a qmodel file, checks parity on 256 test images and
// measures the integer runtime's accuracy on the test set.
func exportAndRun(o options, m *graph.Model, p *qat.Prepared, test *mnist.Set, log *logrus.Logger) (row, error) {
	n := min(256, test.Len())
	x := make([]float32, n*test.ImageSize())
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	test.Batch(idx, x, make([]int, n))
	qm, _, err := export.Export(p, export.Options{Name: m.Name + "-w8a8"}, x, n, export.Thresholds{})
	if err != nil {
		return row{}, err
	}
	path := filepath.Join(o.out, m.Name+"-w8a8.qm")
	if err := qmodel.WriteFile(path, qm); err != nil {
		return row{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return row{}, err
	}
	md, err := infer.Load(qm)
	if err != nil {
		return row{}, err
	}
	s := md.NewSession()
	defer s.Close()
	const B = 500
	xb := make([]float32, B*test.ImageSize())
	yb := make([]int, B)
	bi := make([]int, B)
	correct := 0
	st := time.Now()
	for start := 0; start < test.Len(); start += B {
		nb := min(B, test.Len()-start)
		for i := 0; i < nb; i++ {
			bi[i] = start + i
		}
		test.Batch(bi[:nb], xb[:nb*test.ImageSize()], yb[:nb])
		out, err := s.Run(xb[:nb*test.ImageSize()], nb)
		if err != nil {
			return row{}, err
		}
		k := len(out) / nb
		for i := 0; i < nb; i++ {
			if infer.Argmax(out[i*k:(i+1)*k]) == yb[i] {
				correct++
			}
		}
	}
	acc := float64(correct) / float64(test.Len())
	log.WithFields(logrus.Fields{"file": path, "bytes": fi.Size(), "acc": fmt.Sprintf("%.4f", acc),
		"us_per_image": fmt.Sprintf("%.1f", float64(time.Since(st).Microseconds())/float64(test.Len()))}).Info("exported int8 model")
	return row{model: o.model, bits: "W8A8", method: "QAT -> int8 runtime", acc: acc, size: int(fi.Size())}, nil
}
