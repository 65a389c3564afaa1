// Package preprocess describes how 8-bit images become a model's float input (channels, height,
// width and a per-channel normalisation) and applies it. The description travels with the model
// as two metadata entries (checkpoint, .qm file, ONNX metadata_props) beside the model's input
// shape, which gives the channels and size:
//
//	input.mean = "0.1307"             (per channel, comma-separated, or one value for all)
//	input.std  = "0.3081"
//
// A pixel byte p of channel c becomes (p/255 - mean[c]) / std[c]. Without the entries the
// normalisation is the identity: p/255 (mean 0, std 1), the input of qatgo's MNIST models.
package preprocess

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metadata keys of the normalisation.
const (
	MetaMean = "input.mean"
	MetaStd  = "input.std"
)

// MaxChannels bounds the channels of an image input (grey 1, RGB 3, RGBA 4).
const MaxChannels = 4

// Spec is how images become model input: Channels (1 grey, 3 RGB, 4 RGBA), Height x Width
// pixels, and per channel Mean and Std of the normalisation (len Channels).
type Spec struct {
	Channels, Height, Width int
	Mean, Std               []float32
}

// New returns the Spec of an input of the given size with the identity normalisation (p/255).
func New(channels, height, width int) (Spec, error) {
	s := Spec{Channels: channels, Height: height, Width: width}
	if channels < 1 || channels > MaxChannels || height < 1 || width < 1 || height > 1<<14 || width > 1<<14 {
		return s, fmt.Errorf("preprocess: input %dx%dx%d (want 1 to %d channels, sides 1 to 16384)", channels, height, width, MaxChannels)
	}
	s.Mean, s.Std = make([]float32, channels), make([]float32, channels)
	for c := range s.Std {
		s.Std[c] = 1
	}
	return s, nil
}

// FromShape returns the Spec of a model input shape: [C,H,W] (a library model, NCHW), or with
// hwc set [H,W,C] (an integer model's input). A vector input [K] is read as a 1 x K grey row
// only when K is not a square; a square K = n*n is read as an n x n grey image.
func FromShape(shape []int, hwc bool) (Spec, error) {
	switch {
	case len(shape) == 3 && hwc:
		return New(shape[2], shape[0], shape[1])
	case len(shape) == 3:
		return New(shape[0], shape[1], shape[2])
	case len(shape) == 1:
		n := int(math.Sqrt(float64(shape[0])))
		if n*n == shape[0] {
			return New(1, n, n)
		}
		return New(1, 1, shape[0])
	}
	return Spec{}, fmt.Errorf("preprocess: input shape %v is not an image", shape)
}

// FromMeta returns the Spec of an input shape (see FromShape) with the normalisation recorded in
// meta (identity when absent).
func FromMeta(meta map[string]string, shape []int, hwc bool) (Spec, error) {
	s, err := FromShape(shape, hwc)
	if err != nil {
		return s, err
	}
	for _, f := range []struct {
		key string
		dst []float32
	}{{MetaMean, s.Mean}, {MetaStd, s.Std}} {
		v, ok := meta[f.key]
		if !ok {
			continue
		}
		vals, err := ParseValues(v, s.Channels)
		if err != nil {
			return s, fmt.Errorf("preprocess: metadata %s=%q: %w", f.key, v, err)
		}
		copy(f.dst, vals)
	}
	return s, s.Validate()
}

// ParseValues parses comma-separated per-channel values: one value (for every channel) or exactly
// channels values, each finite. channels must be 1 to MaxChannels.
func ParseValues(v string, channels int) ([]float32, error) {
	if channels < 1 || channels > MaxChannels {
		return nil, fmt.Errorf("%d channels (want 1 to %d)", channels, MaxChannels)
	}
	parts := strings.Split(v, ",")
	if len(parts) != 1 && len(parts) != channels {
		return nil, fmt.Errorf("%d values for %d channels", len(parts), channels)
	}
	out := make([]float32, channels)
	for c := range out {
		p := parts[min(c, len(parts)-1)]
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%q is not a finite number", p)
		}
		out[c] = float32(f)
	}
	return out, nil
}

// Validate checks the sizes and that every Std is positive and finite and every Mean finite.
func (s Spec) Validate() error {
	if _, err := New(s.Channels, s.Height, s.Width); err != nil {
		return err
	}
	if len(s.Mean) != s.Channels || len(s.Std) != s.Channels {
		return fmt.Errorf("preprocess: %d means and %d stds for %d channels", len(s.Mean), len(s.Std), s.Channels)
	}
	for c := range s.Std {
		if !(s.Std[c] > 0) || math.IsInf(float64(s.Std[c]), 0) || math.IsNaN(float64(s.Mean[c])) || math.IsInf(float64(s.Mean[c]), 0) {
			return errors.New("preprocess: every std must be positive and finite, every mean finite")
		}
	}
	return nil
}

// Identity reports whether the normalisation is p/255 (all means 0, all stds 1).
func (s Spec) Identity() bool {
	for c := range s.Mean {
		if s.Mean[c] != 0 || s.Std[c] != 1 {
			return false
		}
	}
	return true
}

// SetMeta records the normalisation in meta (nothing for the identity; existing entries are
// removed then).
func (s Spec) SetMeta(meta map[string]string) {
	delete(meta, MetaMean)
	delete(meta, MetaStd)
	if s.Identity() {
		return
	}
	meta[MetaMean] = formatValues(s.Mean)
	meta[MetaStd] = formatValues(s.Std)
}

func formatValues(v []float32) string {
	p := make([]string, len(v))
	for i, f := range v {
		p[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return strings.Join(p, ",")
}

// Size returns the bytes (and float inputs) of one image: Channels*Height*Width.
func (s Spec) Size() int { return s.Channels * s.Height * s.Width }

// String describes the spec, e.g. "28x28x1, mean [0.1307] std [0.3081]".
func (s Spec) String() string {
	return fmt.Sprintf("%dx%dx%d, mean %v std %v", s.Height, s.Width, s.Channels, s.Mean, s.Std)
}

// HWC writes the normalised float values of one image px (Height*Width*Channels bytes, channels
// interleaved) into dst in the same HWC order (the integer runtime's input layout).
func (s Spec) HWC(dst []float32, px []byte) {
	c := s.Channels
	for i, p := range px[:s.Size()] {
		dst[i] = s.value(p, i%c)
	}
}

// CHW writes the normalised float values of one image px (HWC bytes) into dst in CHW order (the
// layout of the library's models and of ONNX).
func (s Spec) CHW(dst []float32, px []byte) {
	c, hw := s.Channels, s.Height*s.Width
	for i, p := range px[:s.Size()] {
		ch := i % c
		dst[ch*hw+i/c] = s.value(p, ch)
	}
}

func (s Spec) value(p byte, c int) float32 {
	return (float32(p)/255 - s.Mean[c]) / s.Std[c]
}
