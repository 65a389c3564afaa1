// Package opbuf keeps the output tensor of a custom Gorgonia op from one run to the next.
//
// Gorgonia's TapeMachine.Reset forgets every register, so an op that relies on UsePreallocDo
// alone still allocates its output on every training step. Each op therefore owns a Buffer and
// asks it for the output tensor: the tensor of the previous call is reused when it still fits.
// The previous run's value of the node is overwritten by the next run, as the machine does with
// its registers within a run. One mechanism, shared by fakequant and convop.
package opbuf

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Buffer remembers the tensor an op returned last. The zero value is ready to use; one Buffer
// belongs to one op (one graph node).
type Buffer struct {
	last *tensor.Dense
}

// Output returns the tensor an op of dtype dt and shape shp writes its result into.
//
// A non-nil prealloc (from UsePreallocDo) is used when it is a dense, non-view tensor of that
// dtype and shape that shares no memory with an input; any other prealloc is an error. With a nil
// prealloc (from Do) Output returns the previous call's tensor when it fits and does not alias an
// input, and otherwise a new tensor that it keeps for the next call.
func (b *Buffer) Output(prealloc G.Value, dt tensor.Dtype, shp tensor.Shape, inputs ...*tensor.Dense) (*tensor.Dense, error) {
	if prealloc == nil {
		if l := b.last; l != nil && l.Dtype() == dt && l.Shape().Eq(shp) && !aliases(l, inputs) {
			return l, nil
		}
		b.last = tensor.New(tensor.Of(dt), tensor.WithShape(shp.Clone()...))
		return b.last, nil
	}
	d, ok := prealloc.(*tensor.Dense)
	if !ok || d.Dtype() != dt || !d.Shape().Eq(shp) || d.IsMaterializable() || aliases(d, inputs) {
		return nil, fmt.Errorf("preallocated output %v %v does not fit %v %v", prealloc.Dtype(), prealloc.Shape(), dt, shp)
	}
	return d, nil
}

// aliases reports whether t shares its first element with one of inputs.
func aliases(t *tensor.Dense, inputs []*tensor.Dense) bool {
	p := t.Uintptr()
	for _, in := range inputs {
		if in != nil && in.Uintptr() == p {
			return true
		}
	}
	return false
}
