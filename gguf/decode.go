package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// ErrFormat is wrapped by every error [Decode] returns for bytes that are not a valid GGUF file.
var ErrFormat = errors.New("gguf: malformed file")

// ReadFile reads and decodes the GGUF file at path.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Decode parses a GGUF version 3 file (version 2 has the same layout and is accepted too). The
// tensors' Data alias b. Every error wraps ErrFormat and says what was wrong at which byte
// offset; allocations are bounded by len(b).
func Decode(b []byte) (*File, error) {
	d := &decoder{b: b}
	f, err := d.file()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return f, nil
}

type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) remain() int { return len(d.b) - d.pos }

func (d *decoder) need(n int, what string) error {
	if n < 0 || d.remain() < n {
		return fmt.Errorf("truncated at byte %d: %s needs %d bytes, %d remain", d.pos, what, n, d.remain())
	}
	return nil
}

func (d *decoder) u8(what string) (uint8, error) {
	if err := d.need(1, what); err != nil {
		return 0, err
	}
	d.pos++
	return d.b[d.pos-1], nil
}

func (d *decoder) u16(what string) (uint16, error) {
	if err := d.need(2, what); err != nil {
		return 0, err
	}
	d.pos += 2
	return binary.LittleEndian.Uint16(d.b[d.pos-2:]), nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	d.pos += 4
	return binary.LittleEndian.Uint32(d.b[d.pos-4:]), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	d.pos += 8
	return binary.LittleEndian.Uint64(d.b[d.pos-8:]), nil
}

func (d *decoder) str(what string) (string, error) {
	at := d.pos
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(d.remain()) {
		return "", fmt.Errorf("%s at byte %d: length %d exceeds the %d bytes that remain", what, at, n, d.remain())
	}
	s := string(d.b[d.pos : d.pos+int(n)])
	d.pos += int(n)
	return s, nil
}

func (d *decoder) bool(what string) (bool, error) {
	at := d.pos
	v, err := d.u8(what)
	if err != nil {
		return false, err
	}
	if v > 1 {
		return false, fmt.Errorf("%s at byte %d: bool is %d (want 0 or 1)", what, at, v)
	}
	return v == 1, nil
}

// Minimal encoded sizes, used to bound counts before allocating.
const (
	minKVBytes     = 8 + 1 + 4 + 1         // key length, one key byte, type, smallest value
	minTensorBytes = 8 + 1 + 4 + 8 + 4 + 8 // name length, one name byte, n_dims, one dim, type, offset
)

func (d *decoder) file() (*File, error) {
	if err := d.need(4, "magic"); err != nil {
		return nil, err
	}
	if string(d.b[:4]) != "GGUF" {
		return nil, fmt.Errorf("magic %q is not \"GGUF\"", d.b[:4])
	}
	d.pos = 4
	v, err := d.u32("version")
	if err != nil {
		return nil, err
	}
	if v != 2 && v != 3 {
		return nil, fmt.Errorf("version %d is not supported (want 3)", v)
	}
	nt, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nkv, err := d.u64("key-value count")
	if err != nil {
		return nil, err
	}
	if nkv > uint64(d.remain()/minKVBytes) {
		return nil, fmt.Errorf("key-value count %d cannot fit in the %d bytes that remain", nkv, d.remain())
	}
	f := &File{KV: make([]KV, 0, nkv)}
	keys := make(map[string]bool, nkv)
	for i := uint64(0); i < nkv; i++ {
		at := d.pos
		k, err := d.str(fmt.Sprintf("key %d", i))
		if err != nil {
			return nil, err
		}
		if k == "" {
			return nil, fmt.Errorf("key %d at byte %d is empty", i, at)
		}
		if keys[k] {
			return nil, fmt.Errorf("duplicate key %q at byte %d", k, at)
		}
		keys[k] = true
		val, err := d.kvValue(k)
		if err != nil {
			return nil, err
		}
		f.KV = append(f.KV, KV{k, val})
	}
	align, err := f.Alignment()
	if err != nil {
		return nil, err
	}
	if nt > uint64(d.remain()/minTensorBytes) {
		return nil, fmt.Errorf("tensor count %d cannot fit in the %d bytes that remain", nt, d.remain())
	}
	f.Tensors = make([]*Tensor, 0, nt)
	offsets := make([]uint64, 0, nt)
	names := make(map[string]bool, nt)
	for i := uint64(0); i < nt; i++ {
		at := d.pos
		t, off, err := d.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if names[t.Name] {
			return nil, fmt.Errorf("duplicate tensor name %q at byte %d", t.Name, at)
		}
		names[t.Name] = true
		f.Tensors = append(f.Tensors, t)
		offsets = append(offsets, off)
	}
	if nt == 0 {
		return f, nil
	}
	start := pad(uint64(d.pos), uint64(align))
	var want uint64
	for i, t := range f.Tensors {
		if offsets[i] != want {
			return nil, fmt.Errorf("tensor %q has offset %d, want %d (the padded sizes of the tensors before it)", t.Name, offsets[i], want)
		}
		n, _ := ByteSize(t.Type, t.Dims) // checked by tensorInfo
		end := start + want + n
		if end > uint64(len(d.b)) || end < start {
			return nil, fmt.Errorf("tensor %q: data [%d, %d) lies beyond the end of the file (%d bytes)", t.Name, start+want, end, len(d.b))
		}
		t.Data = d.b[start+want : end : end]
		want += pad(n, uint64(align))
	}
	return f, nil
}

func (d *decoder) tensorInfo(i uint64) (*Tensor, uint64, error) {
	at := d.pos
	name, err := d.str(fmt.Sprintf("tensor %d name", i))
	if err != nil {
		return nil, 0, err
	}
	if name == "" || len(name) > MaxNameLen {
		return nil, 0, fmt.Errorf("tensor %d at byte %d: name of %d bytes (want 1 to %d)", i, at, len(name), MaxNameLen)
	}
	nd, err := d.u32("n_dims of " + name)
	if err != nil {
		return nil, 0, err
	}
	if nd < 1 || nd > MaxDims {
		return nil, 0, fmt.Errorf("tensor %q has %d dimensions (want 1 to %d)", name, nd, MaxDims)
	}
	dims := make([]uint64, nd)
	for j := range dims {
		if dims[j], err = d.u64("dimension of " + name); err != nil {
			return nil, 0, err
		}
	}
	typ, err := d.u32("type of " + name)
	if err != nil {
		return nil, 0, err
	}
	off, err := d.u64("offset of " + name)
	if err != nil {
		return nil, 0, err
	}
	t := &Tensor{Name: name, Type: TensorType(typ), Dims: dims}
	n, err := ByteSize(t.Type, dims)
	if err != nil {
		return nil, 0, fmt.Errorf("tensor %q: %v", name, err)
	}
	if n > uint64(len(d.b)) {
		return nil, 0, fmt.Errorf("tensor %q: %v %v needs %d bytes, larger than the file (%d bytes)", name, t.Type, dims, n, len(d.b))
	}
	return t, off, nil
}

func (d *decoder) kvValue(key string) (any, error) {
	at := d.pos
	t, err := d.u32("type of " + key)
	if err != nil {
		return nil, err
	}
	vt := ValueType(t)
	if vt != TypeArray {
		return d.scalar(vt, key, at)
	}
	et, err := d.u32("array type of " + key)
	if err != nil {
		return nil, err
	}
	elem := ValueType(et)
	n, err := d.u64("array length of " + key)
	if err != nil {
		return nil, err
	}
	sz := elem.size()
	if elem == TypeString {
		sz = 8
	}
	if sz == 0 {
		return nil, fmt.Errorf("key %q at byte %d: array of %v is not supported", key, at, elem)
	}
	if n > uint64(d.remain()/sz) {
		return nil, fmt.Errorf("key %q at byte %d: array of %d %v cannot fit in the %d bytes that remain", key, at, n, elem, d.remain())
	}
	switch elem {
	case TypeUint8:
		v := append([]uint8(nil), d.b[d.pos:d.pos+int(n)]...)
		d.pos += int(n)
		return v, nil
	case TypeInt8:
		return readArr(d, n, func() (int8, error) { x, err := d.u8(key); return int8(x), err })
	case TypeUint16:
		return readArr(d, n, func() (uint16, error) { return d.u16(key) })
	case TypeInt16:
		return readArr(d, n, func() (int16, error) { x, err := d.u16(key); return int16(x), err })
	case TypeUint32:
		return readArr(d, n, func() (uint32, error) { return d.u32(key) })
	case TypeInt32:
		return readArr(d, n, func() (int32, error) { x, err := d.u32(key); return int32(x), err })
	case TypeFloat32:
		return readArr(d, n, func() (float32, error) { x, err := d.u32(key); return math.Float32frombits(x), err })
	case TypeBool:
		return readArr(d, n, func() (bool, error) { return d.bool(key) })
	case TypeString:
		return readArr(d, n, func() (string, error) { return d.str("element of " + key) })
	case TypeUint64:
		return readArr(d, n, func() (uint64, error) { return d.u64(key) })
	case TypeInt64:
		return readArr(d, n, func() (int64, error) { x, err := d.u64(key); return int64(x), err })
	case TypeFloat64:
		return readArr(d, n, func() (float64, error) { x, err := d.u64(key); return math.Float64frombits(x), err })
	}
	return nil, fmt.Errorf("key %q: unreachable array type %v", key, elem)
}

func readArr[T any](d *decoder, n uint64, get func() (T, error)) ([]T, error) {
	v := make([]T, n)
	for i := range v {
		x, err := get()
		if err != nil {
			return nil, err
		}
		v[i] = x
	}
	return v, nil
}

func (d *decoder) scalar(t ValueType, key string, at int) (any, error) {
	switch t {
	case TypeUint8:
		return d.u8(key)
	case TypeInt8:
		x, err := d.u8(key)
		return int8(x), err
	case TypeUint16:
		return d.u16(key)
	case TypeInt16:
		x, err := d.u16(key)
		return int16(x), err
	case TypeUint32:
		return d.u32(key)
	case TypeInt32:
		x, err := d.u32(key)
		return int32(x), err
	case TypeFloat32:
		x, err := d.u32(key)
		return math.Float32frombits(x), err
	case TypeBool:
		return d.bool(key)
	case TypeString:
		return d.str("value of " + key)
	case TypeUint64:
		return d.u64(key)
	case TypeInt64:
		x, err := d.u64(key)
		return int64(x), err
	case TypeFloat64:
		x, err := d.u64(key)
		return math.Float64frombits(x), err
	}
	return nil, fmt.Errorf("key %q at byte %d has unknown value type %d", key, at, uint32(t))
}
