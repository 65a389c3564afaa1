package qat

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/quant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestOpErrorUnwrapsTapeMachine: a fake-quant node fed a NaN fails inside TapeMachine.RunAll; the
// machine's error carries "PC n. Failed to execute instruction" and hides the op's error from
// errors.Is. opError returns the op's own message (naming the quantizer) with its chain intact.
func TestOpErrorUnwrapsTapeMachine(t *testing.T) {
	g := G.NewGraph()
	x := G.NewVector(g, tensor.Float32, G.WithShape(4), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithBacking([]float32{1, float32(math.NaN()), 2, 3}))))
	q, err := fakequant.New(g, x, fakequant.Config{Name: "act", Bits: 8, Scheme: fakequant.AsymmetricSigned,
		Granularity: fakequant.PerTensor, Method: fakequant.Observed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Sum(q.Out); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	raw := vm.RunAll()
	if raw == nil {
		t.Fatal("a NaN input ran without error")
	}
	if !strings.Contains(raw.Error(), "Failed to execute instruction") {
		t.Fatalf("Gorgonia's error changed form (the wrapper this helper removes): %v", raw)
	}
	got := opError(raw)
	if strings.Contains(got.Error(), "Failed to execute instruction") || strings.HasPrefix(got.Error(), "PC ") {
		t.Errorf("opError kept the machine's wrapper: %v", got)
	}
	if !strings.Contains(got.Error(), "node act") || !strings.Contains(got.Error(), "NaN") {
		t.Errorf("opError = %q, want the op's message naming the quantizer and the NaN", got)
	}
	if !errors.Is(got, quant.ErrNonFinite) {
		t.Errorf("errors.Is(opError(err), quant.ErrNonFinite) = false for %v", got)
	}
	plain := errors.New("plain")
	if opError(plain) != plain || opError(nil) != nil {
		t.Error("opError changed an error that is not Gorgonia's wrapper")
	}
}
