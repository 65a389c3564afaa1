package export

import (
	"testing"

	"github.com/qatgo/qatgo/qat"
)

// BenchmarkLower measures SiteParams (one run of the evaluation graph) plus the lowering of the
// small test CNN.
func BenchmarkLower(b *testing.B) {
	p, _ := trained(b, smallCNN, qat.W8A8(), 4)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Lower(p, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParity measures a parity check on 64 examples (both models run once).
func BenchmarkParity(b *testing.B) {
	p, test := trained(b, smallCNN, qat.W8A8(), 4)
	qm, err := Lower(p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parity(p, qm, test.x, test.Len()); err != nil {
			b.Fatal(err)
		}
	}
}
