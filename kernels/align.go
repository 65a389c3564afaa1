package kernels

import "unsafe"

// cacheLine is the alignment of the weight panels and constant tables that the SIMD kernels
// load as whole 64-byte vectors: a vector load that crosses a cache line costs two loads.
const cacheLine = 64

// alignedInt8 returns a zeroed slice of n int8 whose first element is cacheLine-aligned.
func alignedInt8(n int) []int8 {
	b := make([]int8, n+cacheLine-1)
	o := int(-uintptr(unsafe.Pointer(&b[0]))) & (cacheLine - 1)
	return b[o : o+n : o+n]
}

// alignedInt32 is alignedInt8 for int32.
func alignedInt32(n int) []int32 {
	b := make([]int32, n+cacheLine/4-1)
	o := (int(-uintptr(unsafe.Pointer(&b[0]))) & (cacheLine - 1)) / 4
	return b[o : o+n : o+n]
}

// alignedInt64 is alignedInt8 for int64.
func alignedInt64(n int) []int64 {
	b := make([]int64, n+cacheLine/8-1)
	o := (int(-uintptr(unsafe.Pointer(&b[0]))) & (cacheLine - 1)) / 8
	return b[o : o+n : o+n]
}
