package gguf

import (
	"fmt"
	"slices"
)

// Version is the GGUF version this package writes and reads.
const Version = 3

// DefaultAlignment is the data alignment when a file has no "general.alignment" key.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that overrides the data alignment (u32, a power of two).
const KeyAlignment = "general.alignment"

// KV is one metadata entry. Value holds one of the Go types listed at [ValueType]: a scalar
// (uint8, int8, uint16, int16, uint32, int32, float32, bool, string, uint64, int64, float64) or
// an array as a slice of one of them.
type KV struct {
	Key   string
	Value any
}

// Tensor is one tensor of a file: its name, type, dimensions (Dims[0] is the contiguous one)
// and its encoded bytes (exactly [ByteSize] of type and dimensions).
type Tensor struct {
	Name string
	Type TensorType
	Dims []uint64
	Data []byte
}

// Elements returns the number of values of t.
func (t *Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a GGUF file: ordered metadata and tensors. The zero value is an empty file.
type File struct {
	KV      []KV
	Tensors []*Tensor
}

// Get returns the value of key and whether it is present.
func (f *File) Get(key string) (any, bool) {
	for _, kv := range f.KV {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Set sets key to v, replacing an existing entry in place or appending a new one. v must be one
// of the types listed at [KV] ([File.Encode] checks).
func (f *File) Set(key string, v any) {
	for i := range f.KV {
		if f.KV[i].Key == key {
			f.KV[i].Value = v
			return
		}
	}
	f.KV = append(f.KV, KV{key, v})
}

// Delete removes key if present.
func (f *File) Delete(key string) {
	f.KV = slices.DeleteFunc(f.KV, func(kv KV) bool { return kv.Key == key })
}

// Tensor returns the tensor named name, or nil.
func (f *File) Tensor(name string) *Tensor {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// AddTensor appends a tensor after checking that data has the size of its type and dims.
func (f *File) AddTensor(name string, t TensorType, dims []uint64, data []byte) error {
	n, err := ByteSize(t, dims)
	if err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	if uint64(len(data)) != n {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d for %v %v", name, len(data), n, t, dims)
	}
	f.Tensors = append(f.Tensors, &Tensor{Name: name, Type: t, Dims: slices.Clone(dims), Data: data})
	return nil
}

// String returns the string value of key, or an error if it is absent or of another type.
func (f *File) String(key string) (string, error) {
	v, ok := f.Get(key)
	if !ok {
		return "", fmt.Errorf("gguf: missing key %q", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("gguf: key %q is %s, want str", key, typeName(v))
	}
	return s, nil
}

// Uint returns the value of an unsigned or non-negative signed integer key as a uint64, or an
// error if it is absent, of another type or negative.
func (f *File) Uint(key string) (uint64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, fmt.Errorf("gguf: missing key %q", key)
	}
	var n int64
	switch x := v.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	default:
		return 0, fmt.Errorf("gguf: key %q is %s, want an integer", key, typeName(v))
	}
	if n < 0 {
		return 0, fmt.Errorf("gguf: key %q is %d, want >= 0", key, n)
	}
	return uint64(n), nil
}

// Float returns the value of a float32 or float64 key as a float64, or an error if it is absent
// or of another type.
func (f *File) Float(key string) (float64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, fmt.Errorf("gguf: missing key %q", key)
	}
	switch x := v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, fmt.Errorf("gguf: key %q is %s, want a float", key, typeName(v))
}

// Alignment returns the data alignment the file declares (DefaultAlignment if it declares
// none), or an error if "general.alignment" is not a u32 power of two.
func (f *File) Alignment() (int, error) {
	v, ok := f.Get(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := v.(uint32)
	if !ok {
		return 0, fmt.Errorf("gguf: key %q must be u32, is %s", KeyAlignment, typeName(v))
	}
	if a == 0 || a&(a-1) != 0 || a > 1<<20 {
		return 0, fmt.Errorf("gguf: alignment %d is not a power of 2 up to 2^20", a)
	}
	return int(a), nil
}

// valueType returns the GGUF type of a Go value (for an array: TypeArray and the element type).
func valueType(v any) (t, elem ValueType, ok bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, 0, true
	case int8:
		return TypeInt8, 0, true
	case uint16:
		return TypeUint16, 0, true
	case int16:
		return TypeInt16, 0, true
	case uint32:
		return TypeUint32, 0, true
	case int32:
		return TypeInt32, 0, true
	case float32:
		return TypeFloat32, 0, true
	case bool:
		return TypeBool, 0, true
	case string:
		return TypeString, 0, true
	case uint64:
		return TypeUint64, 0, true
	case int64:
		return TypeInt64, 0, true
	case float64:
		return TypeFloat64, 0, true
	case []uint8:
		return TypeArray, TypeUint8, true
	case []int8:
		return TypeArray, TypeInt8, true
	case []uint16:
		return TypeArray, TypeUint16, true
	case []int16:
		return TypeArray, TypeInt16, true
	case []uint32:
		return TypeArray, TypeUint32, true
	case []int32:
		return TypeArray, TypeInt32, true
	case []float32:
		return TypeArray, TypeFloat32, true
	case []bool:
		return TypeArray, TypeBool, true
	case []string:
		return TypeArray, TypeString, true
	case []uint64:
		return TypeArray, TypeUint64, true
	case []int64:
		return TypeArray, TypeInt64, true
	case []float64:
		return TypeArray, TypeFloat64, true
	}
	return 0, 0, false
}

func typeName(v any) string {
	t, e, ok := valueType(v)
	switch {
	case !ok:
		return fmt.Sprintf("%T", v)
	case t == TypeArray:
		return "arr[" + e.String() + "]"
	}
	return t.String()
}
