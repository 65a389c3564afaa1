package preprocess

import (
	"fmt"

	"github.com/qatgo/qatgo/data/mnist"
)

// Set is a labelled image data set in a Spec's size: Pixels holds Len() images of Spec.Size()
// bytes each (HWC, channels interleaved). It implements qat.Dataset with the Spec's normalisation.
type Set struct {
	Spec   Spec
	Pixels []byte
	Labels []uint8
}

// NewSet checks that pixels holds len(labels) images of spec's size and returns the set.
func NewSet(spec Spec, pixels []byte, labels []uint8) (*Set, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(pixels) != len(labels)*spec.Size() {
		return nil, fmt.Errorf("preprocess: %d bytes for %d images of %d", len(pixels), len(labels), spec.Size())
	}
	return &Set{Spec: spec, Pixels: pixels, Labels: labels}, nil
}

// Len returns the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// Image returns the bytes of image i (HWC).
func (s *Set) Image(i int) []byte { n := s.Spec.Size(); return s.Pixels[i*n : (i+1)*n] }

// Subset returns the first n images (all for n <= 0 or n >= Len), sharing the pixels.
func (s *Set) Subset(n int) *Set {
	if n <= 0 || n >= s.Len() {
		return s
	}
	return &Set{Spec: s.Spec, Pixels: s.Pixels[:n*s.Spec.Size()], Labels: s.Labels[:n]}
}

// Batch writes the images with the given indices, normalised, into x in NCHW order and their
// labels into y (qat.Dataset).
func (s *Set) Batch(idx []int, x []float32, y []int) {
	n := s.Spec.Size()
	for j, i := range idx {
		s.Spec.CHW(x[j*n:(j+1)*n], s.Image(i))
		y[j] = int(s.Labels[i])
	}
}

// BatchHWC writes images [from, from+len(x)/Size) normalised into x in HWC order (the integer
// runtime's float input).
func (s *Set) BatchHWC(from int, x []float32) {
	n := s.Spec.Size()
	for j := 0; j < len(x)/n; j++ {
		s.Spec.HWC(x[j*n:(j+1)*n], s.Image(from+j))
	}
}

// FromMNIST returns an idx image set (MNIST, Fashion-MNIST: 28x28 grey) as a Set of spec, which
// must have one channel and the images' size.
func FromMNIST(m *mnist.Set, spec Spec) (*Set, error) {
	if spec.Channels != 1 || spec.Height != m.Rows || spec.Width != m.Cols {
		return nil, fmt.Errorf("preprocess: the model reads %dx%dx%d images (%d values); the idx set has %dx%dx1 (%d)", spec.Height, spec.Width, spec.Channels, spec.Size(), m.Rows, m.Cols, m.Rows*m.Cols)
	}
	return NewSet(spec, m.Pixels, m.Labels)
}
