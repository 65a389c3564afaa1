package fakequant

import "fmt"

// Layout maps the elements of a row-major tensor to their (scale, zero point) slice. The tensor is
// viewed as [Outer, C, Inner] around the axis (PerTensor: [1, n, 1]); Block consecutive indices along
// the axis share a slice, and with PerGroup every outer and inner index has its own slices too.
type Layout struct {
	// Shape is the tensor shape the layout was made for.
	Shape []int
	// Outer, C and Inner view the tensor as [Outer, C, Inner] around the axis.
	Outer, C, Inner int
	// Block is the number of consecutive indices along the axis that share a slice
	// (1 for PerChannel, GroupSize for PerGroup, C for PerTensor).
	Block int
	// PerOuter is true when slices also differ along the outer axes (PerGroup).
	PerOuter bool
	// PerInner is true when slices also differ along the inner axes (PerGroup).
	PerInner bool
}

// NewLayout builds the layout of cfg's granularity for a tensor of the given shape.
func NewLayout(shape []int, cfg Config) (Layout, error) {
	if len(shape) == 0 {
		return Layout{}, fmt.Errorf("%w: %s: scalar input; use a shape of rank >= 1", ErrConfig, cfg.Name)
	}
	n := 1
	for _, d := range shape {
		if d < 1 {
			return Layout{}, fmt.Errorf("%w: %s: shape %v", ErrConfig, cfg.Name, shape)
		}
		n *= d
	}
	l := Layout{Shape: append([]int(nil), shape...)}
	if cfg.Granularity == PerTensor {
		l.Outer, l.C, l.Inner, l.Block = 1, n, 1, n
		return l, nil
	}
	ax := cfg.Axis
	if ax < 0 {
		ax += len(shape)
	}
	if ax < 0 || ax >= len(shape) {
		return Layout{}, fmt.Errorf("%w: %s: axis %d out of range for shape %v", ErrConfig, cfg.Name, cfg.Axis, shape)
	}
	l.Outer, l.C, l.Inner = 1, shape[ax], 1
	for _, d := range shape[:ax] {
		l.Outer *= d
	}
	for _, d := range shape[ax+1:] {
		l.Inner *= d
	}
	l.Block = 1
	if cfg.Granularity == PerGroup {
		if l.C%cfg.GroupSize != 0 {
			return Layout{}, fmt.Errorf("%w: %s: group size %d does not divide axis length %d", ErrConfig, cfg.Name, cfg.GroupSize, l.C)
		}
		l.Block = cfg.GroupSize
		l.PerOuter, l.PerInner = true, true
	}
	return l, nil
}

// Slices returns K, the number of (scale, zero point) slices.
func (l Layout) Slices() int {
	k := l.C / l.Block
	if l.PerOuter {
		k *= l.Outer
	}
	if l.PerInner {
		k *= l.Inner
	}
	return k
}

// Len returns the number of tensor elements.
func (l Layout) Len() int { return l.Outer * l.C * l.Inner }

// PerSlice returns N, the number of elements that share one slice.
func (l Layout) PerSlice() int { return l.Len() / l.Slices() }

// Slice returns the slice index of the element at flat (row-major) index i.
func (l Layout) Slice(i int) int {
	in := i % l.Inner
	c := (i / l.Inner) % l.C
	o := i / (l.Inner * l.C)
	k := c / l.Block
	if l.PerOuter {
		k += o * (l.C / l.Block)
	}
	if l.PerInner {
		k = k*l.Inner + in
	}
	return k
}

// runIter walks the runs of elements that share a slice: elements start, start+stride, ... < end
// all belong to slice k, and the runs cover every element exactly once.
type runIter struct {
	l        Layout
	o, b, in int
}

func (l Layout) runs() runIter { return runIter{l: l} }

func (it *runIter) next() (start, end, stride, k int, ok bool) {
	l := &it.l
	if it.o >= l.Outer {
		return 0, 0, 0, 0, false
	}
	cb := l.C / l.Block
	if !l.PerInner || l.Inner == 1 { // contiguous runs of Block*Inner elements
		k = it.b
		if l.PerOuter {
			k += it.o * cb
		}
		start = (it.o*l.C + it.b*l.Block) * l.Inner
		end, stride = start+l.Block*l.Inner, 1
		if it.b++; it.b == cb {
			it.b, it.o = 0, it.o+1
		}
		return start, end, stride, k, true
	}
	// PerGroup with inner axes: each (o, b, in) is a strided run of Block elements.
	k = (it.o*cb+it.b)*l.Inner + it.in
	start = (it.o*l.C+it.b*l.Block)*l.Inner + it.in
	end, stride = start+l.Block*l.Inner, l.Inner
	if it.in++; it.in == l.Inner {
		it.in = 0
		if it.b++; it.b == cb {
			it.b, it.o = 0, it.o+1
		}
	}
	return start, end, stride, k, true
}
