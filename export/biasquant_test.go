package export

import (
	"testing"

	"github.com/qatgo/qatgo/qat"
)

// With the runtime's int32 bias simulated in the fake-quant graph (qat.BiasAuto, the default,
// for weights below 8 bits) a 2-bit model agrees with the integer runtime to within 1 LSB on
// every layer; with float biases (qat.BiasOff) the same training leaves layers further apart.
func TestBiasSimulationParity(t *testing.T) {
	minW1 := map[qat.BiasMode]float64{}
	for _, mode := range []qat.BiasMode{qat.BiasOff, qat.BiasAuto} {
		qc := qat.W2A2().FirstLast8(smallCNN(1))
		qc.BiasQuant = mode
		p, test := trained(t, smallCNN, qc, 60)
		qm, err := Lower(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parity(p, qm, test.x, test.Len())
		if err != nil {
			t.Fatal(err)
		}
		minW1[mode] = 1
		for _, l := range rep.Layers {
			minW1[mode] = min(minW1[mode], l.Within1)
		}
		if mode == qat.BiasAuto {
			if err := rep.Check(Thresholds{MinWithin1: 0.999, MinAgreement: 0.999, MaxLSB: 1}); err != nil {
				t.Fatalf("bias simulated: %v\n%v", err, rep)
			}
		}
	}
	if !(minW1[qat.BiasOff] < minW1[qat.BiasAuto]) {
		t.Fatalf("lowest per-layer share within 1 LSB: %v with float biases, %v simulated", minW1[qat.BiasOff], minW1[qat.BiasAuto])
	}
}
