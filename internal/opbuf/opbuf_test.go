package opbuf

import (
	"testing"

	"gorgonia.org/tensor"
)

func TestOutput(t *testing.T) {
	var b Buffer
	shp := tensor.Shape{2, 3}
	x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3))

	first, err := b.Output(nil, tensor.Float32, shp, x)
	if err != nil || first == x || !first.Shape().Eq(shp) || first.Dtype() != tensor.Float32 {
		t.Fatalf("first output %v %v, err %v", first, first == x, err)
	}
	again, _ := b.Output(nil, tensor.Float32, shp, x)
	if again != first {
		t.Fatal("a fitting previous output is not reused")
	}
	// The previous output is an input now (a later op reads it): it must not be overwritten.
	fresh, _ := b.Output(nil, tensor.Float32, shp, first)
	if fresh == first {
		t.Fatal("output aliases an input")
	}
	// Another shape or dtype gets a new tensor.
	if o, _ := b.Output(nil, tensor.Float64, shp); o.Dtype() != tensor.Float64 || o == fresh {
		t.Fatal("dtype change not honoured")
	}
	if o, _ := b.Output(nil, tensor.Float64, tensor.Shape{6}); !o.Shape().Eq(tensor.Shape{6}) {
		t.Fatal("shape change not honoured")
	}

	good := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3))
	if o, err := b.Output(good, tensor.Float32, shp, x); err != nil || o != good {
		t.Fatalf("fitting prealloc refused: %v", err)
	}
	for name, bad := range map[string]*tensor.Dense{
		"shape": tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(3, 2)),
		"dtype": tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(2, 3)),
		"alias": x,
	} {
		if _, err := b.Output(bad, tensor.Float32, shp, x); err == nil {
			t.Errorf("prealloc with wrong %s accepted", name)
		}
	}
}
