package gguf

import "fmt"

// ValueType is the type tag of a metadata value (gguf_type).
type ValueType uint32

// Metadata value types. A value of each type is held in a [KV] as the Go type in parentheses.
const (
	TypeUint8   ValueType = 0  // (uint8)
	TypeInt8    ValueType = 1  // (int8)
	TypeUint16  ValueType = 2  // (uint16)
	TypeInt16   ValueType = 3  // (int16)
	TypeUint32  ValueType = 4  // (uint32)
	TypeInt32   ValueType = 5  // (int32)
	TypeFloat32 ValueType = 6  // (float32)
	TypeBool    ValueType = 7  // (bool), one byte 0 or 1
	TypeString  ValueType = 8  // (string)
	TypeArray   ValueType = 9  // a slice of one of the other types: []uint8 ... []float64, []bool, []string
	TypeUint64  ValueType = 10 // (uint64)
	TypeInt64   ValueType = 11 // (int64)
	TypeFloat64 ValueType = 12 // (float64)
)

var valueTypeNames = [...]string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("gguf_type(%d)", uint32(t))
}

// size is the encoded size of a scalar of type t, 0 for string and array.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// TensorType is a ggml tensor type (enum ggml_type).
type TensorType uint32

// Tensor types. This package encodes and decodes F32, F16, Q8_0 and Q4_0; the others are known
// by size only, so that a file holding them can be read and written as a container.
const (
	F32    TensorType = 0
	F16    TensorType = 1
	Q4_0   TensorType = 2
	Q4_1   TensorType = 3
	Q5_0   TensorType = 6
	Q5_1   TensorType = 7
	Q8_0   TensorType = 8
	Q8_1   TensorType = 9
	Q2_K   TensorType = 10
	Q3_K   TensorType = 11
	Q4_K   TensorType = 12
	Q5_K   TensorType = 13
	Q6_K   TensorType = 14
	Q8_K   TensorType = 15
	IQ4_NL TensorType = 20
	I8     TensorType = 24
	I16    TensorType = 25
	I32    TensorType = 26
	I64    TensorType = 27
	F64    TensorType = 28
	BF16   TensorType = 30
)

// typeInfo is the block size (values per block) and the bytes per block of a tensor type.
type typeInfo struct {
	name        string
	block, size int
}

var tensorTypes = map[TensorType]typeInfo{
	F32: {"F32", 1, 4}, F16: {"F16", 1, 2}, BF16: {"BF16", 1, 2}, F64: {"F64", 1, 8},
	I8: {"I8", 1, 1}, I16: {"I16", 1, 2}, I32: {"I32", 1, 4}, I64: {"I64", 1, 8},
	Q4_0: {"Q4_0", 32, 18}, Q4_1: {"Q4_1", 32, 20}, Q5_0: {"Q5_0", 32, 22}, Q5_1: {"Q5_1", 32, 24},
	Q8_0: {"Q8_0", 32, 34}, Q8_1: {"Q8_1", 32, 36}, IQ4_NL: {"IQ4_NL", 32, 18},
	Q2_K: {"Q2_K", 256, 84}, Q3_K: {"Q3_K", 256, 110}, Q4_K: {"Q4_K", 256, 144},
	Q5_K: {"Q5_K", 256, 176}, Q6_K: {"Q6_K", 256, 210}, Q8_K: {"Q8_K", 256, 292},
}

func (t TensorType) String() string {
	if ti, ok := tensorTypes[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// Known reports whether the package knows the block layout of t.
func (t TensorType) Known() bool { _, ok := tensorTypes[t]; return ok }

// BlockSize returns the number of values per block of t (1 for float and integer types), 0 if t
// is unknown.
func (t TensorType) BlockSize() int { return tensorTypes[t].block }

// BlockBytes returns the bytes per block of t, 0 if t is unknown.
func (t TensorType) BlockBytes() int { return tensorTypes[t].size }

// ParseTensorType returns the tensor type named s ("f32", "F16", "q8_0", ...; case-insensitive).
func ParseTensorType(s string) (TensorType, error) {
	for t, ti := range tensorTypes {
		if equalFold(ti.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown tensor type %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ByteSize returns the bytes of a tensor of type t with dimensions ne (ne[0] contiguous), or an
// error if t is unknown, a dimension is < 1, ne[0] is not a multiple of the block size, or the
// size does not fit in an int64.
func ByteSize(t TensorType, ne []uint64) (uint64, error) {
	ti, ok := tensorTypes[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if len(ne) < 1 || len(ne) > MaxDims {
		return 0, fmt.Errorf("%d dimensions (want 1 to %d)", len(ne), MaxDims)
	}
	const limit = 1 << 62
	n := uint64(1)
	for i, d := range ne {
		if d < 1 || d > limit {
			return 0, fmt.Errorf("dimension %d is %d (want 1 to 2^62)", i, d)
		}
		if n > limit/d {
			return 0, fmt.Errorf("dimensions %v overflow", ne)
		}
		n *= d
	}
	if ne[0]%uint64(ti.block) != 0 {
		return 0, fmt.Errorf("type %v needs ne[0] (%d) to be a multiple of %d", t, ne[0], ti.block)
	}
	blocks := n / uint64(ti.block)
	if blocks > limit/uint64(ti.size) {
		return 0, fmt.Errorf("dimensions %v overflow", ne)
	}
	return blocks * uint64(ti.size), nil
}

// MaxDims is the largest number of dimensions of a tensor (GGML_MAX_DIMS).
const MaxDims = 4

// MaxNameLen is the longest tensor name in bytes (GGML_MAX_NAME 64, less its NUL).
const MaxNameLen = 63
