package quant

import "fmt"

// Range is an inclusive integer range [Min, Max] of quantized levels.
type Range struct{ Min, Max int32 }

// Levels returns the number of levels Max-Min+1.
func (r Range) Levels() int32 { return r.Max - r.Min + 1 }

// String formats the range as [min,max].
func (r Range) String() string { return fmt.Sprintf("[%d,%d]", r.Min, r.Max) }

// NarrowSigned is the symmetric weight range [-(2^(b-1)-1), 2^(b-1)-1] (int8: [-127,127], int4: [-7,7]).
func NarrowSigned(bits int) Range {
	checkBits(bits)
	m := int32(1)<<(bits-1) - 1
	return Range{-m, m}
}

// Signed is the full two's complement range [-2^(b-1), 2^(b-1)-1] used for activations.
func Signed(bits int) Range {
	checkBits(bits)
	m := int32(1) << (bits - 1)
	return Range{-m, m - 1}
}

// Unsigned is [0, 2^b-1].
func Unsigned(bits int) Range {
	checkBits(bits)
	return Range{0, int32(1)<<bits - 1}
}

// ValidBits reports whether bits is a supported bit width (2..8 for tensors; 16 and 32 are
// reserved for accumulators and biases and are not levels of a fake-quant node).
func ValidBits(bits int) bool { return bits >= 2 && bits <= 8 }

func checkBits(bits int) {
	if !ValidBits(bits) {
		panic(fmt.Sprintf("quant: bit width %d outside 2..8", bits)) // programmer error
	}
}

// WeightStorageMax is the largest magnitude a weight level of the given bit width is stored with
// in a model file: 7 for packed int4 (bits <= 4), 127 for int8 (bits 5..8).
func WeightStorageMax(bits int) int32 {
	if bits <= 4 {
		return 7
	}
	return 127
}

// WeightRescale returns the factor k by which the exporter multiplies a channel's integer weight
// levels (and divides its scale) so that they fill the storage range: the same reals, w*s =
// (w*k)*(s/k), on a k times finer grid, which gives the int32 bias a k times finer scale
// s_in*s/k. It is storageMax/maxAbsLevel (integer division) when the levels use at most half of
// the storage range, and 1 otherwise (also for an all-zero channel). The fake-quant graph's bias
// simulation uses the same factor, so training and export round biases alike.
func WeightRescale(maxAbsLevel, storageMax int32) int32 {
	if maxAbsLevel <= 0 || maxAbsLevel > storageMax/2 {
		return 1
	}
	return storageMax / maxAbsLevel
}
