package gguf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Encode returns the file in GGUF version 3 layout, with the tensors in order at the offsets
// llama.cpp requires. It checks what llama.cpp's loader checks: keys non-empty and unique,
// tensor names unique and at most MaxNameLen bytes, every value of a supported type, the
// alignment a u32 power of two, every tensor's data the size of its type and dimensions.
func (f *File) Encode() ([]byte, error) {
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteTo writes the file to w (see [File.Encode]); nothing is written if the file is invalid.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	align, err := f.validate()
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: bufio.NewWriter(w)}
	e := encoder{w: cw}
	e.raw([]byte("GGUF"))
	e.u32(Version)
	e.u64(uint64(len(f.Tensors)))
	e.u64(uint64(len(f.KV)))
	for _, kv := range f.KV {
		e.str(kv.Key)
		t, elem, _ := valueType(kv.Value)
		e.u32(uint32(t))
		if t == TypeArray {
			e.u32(uint32(elem))
		}
		e.value(kv.Value)
	}
	var off uint64
	for _, t := range f.Tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off += pad(uint64(len(t.Data)), align)
	}
	if len(f.Tensors) > 0 {
		e.zeros(pad(cw.n, align) - cw.n)
	}
	for _, t := range f.Tensors {
		e.raw(t.Data)
		e.zeros(pad(uint64(len(t.Data)), align) - uint64(len(t.Data)))
	}
	if e.err == nil {
		e.err = cw.w.(*bufio.Writer).Flush()
	}
	return int64(cw.n), e.err
}

// validate checks the file and returns its alignment.
func (f *File) validate() (uint64, error) {
	align, err := f.Alignment()
	if err != nil {
		return 0, err
	}
	keys := make(map[string]bool, len(f.KV))
	for _, kv := range f.KV {
		if kv.Key == "" {
			return 0, fmt.Errorf("gguf: empty metadata key")
		}
		if keys[kv.Key] {
			return 0, fmt.Errorf("gguf: duplicate metadata key %q", kv.Key)
		}
		keys[kv.Key] = true
		if _, _, ok := valueType(kv.Value); !ok {
			return 0, fmt.Errorf("gguf: key %q: value of Go type %T has no GGUF type", kv.Key, kv.Value)
		}
	}
	names := make(map[string]bool, len(f.Tensors))
	for _, t := range f.Tensors {
		if t.Name == "" || len(t.Name) > MaxNameLen {
			return 0, fmt.Errorf("gguf: tensor name %q: want 1 to %d bytes", t.Name, MaxNameLen)
		}
		if names[t.Name] {
			return 0, fmt.Errorf("gguf: duplicate tensor name %q", t.Name)
		}
		names[t.Name] = true
		n, err := ByteSize(t.Type, t.Dims)
		if err != nil {
			return 0, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		if uint64(len(t.Data)) != n {
			return 0, fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d for %v %v", t.Name, len(t.Data), n, t.Type, t.Dims)
		}
	}
	return uint64(align), nil
}

func pad(n, align uint64) uint64 { return (n + align - 1) / align * align }

type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

func (e *encoder) zeros(n uint64) {
	var z [64]byte
	for n > 0 {
		k := min(n, uint64(len(z)))
		e.raw(z[:k])
		n -= k
	}
}

func (e *encoder) u8(v uint8)   { e.buf[0] = v; e.raw(e.buf[:1]) }
func (e *encoder) u16(v uint16) { binary.LittleEndian.PutUint16(e.buf[:], v); e.raw(e.buf[:2]) }
func (e *encoder) u32(v uint32) { binary.LittleEndian.PutUint32(e.buf[:], v); e.raw(e.buf[:4]) }
func (e *encoder) u64(v uint64) { binary.LittleEndian.PutUint64(e.buf[:], v); e.raw(e.buf[:8]) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

func (e *encoder) bool(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// value writes a scalar, or an array's count and elements (its element type is written by the
// caller).
func (e *encoder) value(v any) {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.bool(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case []uint8:
		e.u64(uint64(len(x)))
		e.raw(x)
	case []int8:
		arr(e, x, func(v int8) { e.u8(uint8(v)) })
	case []uint16:
		arr(e, x, e.u16)
	case []int16:
		arr(e, x, func(v int16) { e.u16(uint16(v)) })
	case []uint32:
		arr(e, x, e.u32)
	case []int32:
		arr(e, x, func(v int32) { e.u32(uint32(v)) })
	case []float32:
		arr(e, x, func(v float32) { e.u32(math.Float32bits(v)) })
	case []bool:
		arr(e, x, e.bool)
	case []string:
		arr(e, x, e.str)
	case []uint64:
		arr(e, x, e.u64)
	case []int64:
		arr(e, x, func(v int64) { e.u64(uint64(v)) })
	case []float64:
		arr(e, x, func(v float64) { e.u64(math.Float64bits(v)) })
	}
}

func arr[T any](e *encoder, xs []T, put func(T)) {
	e.u64(uint64(len(xs)))
	for _, x := range xs {
		put(x)
	}
}
