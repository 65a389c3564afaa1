package qmodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sort"

	"github.com/qatgo/qatgo/internal/atomicfile"
	"github.com/qatgo/qatgo/internal/filekind"
)

// Magic is the first 8 bytes of a model file.
const Magic = "QATGOMDL"

// Version is the file format version this package writes and reads.
const Version = 1

// Section kinds, in file order.
const (
	sectionMeta    = 1
	sectionTensors = 2
	sectionOps     = 3
	sectionData    = 4
	numSections    = 4
)

const (
	align        = 64
	sectionEntry = 32
	headerFixed  = 16
	headerLen    = headerFixed + numSections*sectionEntry // CRC follows
	headerCRCEnd = headerLen + 4
	numOpAttrs   = 9
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat is wrapped by every error that Decode returns for a malformed file.
var ErrFormat = errors.New("qmodel: malformed model file")

func alignUp(n int) int { return (n + align - 1) &^ (align - 1) }

// writer appends little-endian values.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) i32(v int32)  { w.u32(uint32(v)) }
func (w *writer) str(s string) { w.u32(uint32(len(s))); w.b = append(w.b, s...) }

// Encode validates m and returns its file bytes.
func Encode(m *Model) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return encode(m), nil
}

// encode writes m without validating it (tests use it to produce well-formed files of invalid models).
// It needs only that indices are non-negative.
func encode(m *Model) []byte {
	// metadata
	var meta writer
	meta.str(m.Name)
	meta.str(m.Producer)
	for _, list := range [][]int{m.Inputs, m.Outputs} {
		meta.u32(uint32(len(list)))
		for _, t := range list {
			meta.u32(uint32(t))
		}
	}
	meta.u32(uint32(len(m.Labels)))
	for _, l := range m.Labels {
		meta.str(l)
	}
	keys := make([]string, 0, len(m.Meta))
	for k := range m.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	meta.u32(uint32(len(keys)))
	for _, k := range keys {
		meta.str(k)
		meta.str(m.Meta[k])
	}
	// tensors and data
	var tens, data writer
	tens.u32(uint32(len(m.Tensors)))
	for i := range m.Tensors {
		t := &m.Tensors[i]
		tens.str(t.Name)
		tens.u8(uint8(t.DType))
		tens.u8(uint8(len(t.Shape)))
		for _, d := range t.Shape {
			tens.u32(uint32(d))
		}
		if t.Quant == nil {
			tens.u32(0)
		} else {
			tens.u32(uint32(len(t.Quant.Scales)))
			tens.i32(int32(t.Quant.Axis))
			for _, s := range t.Quant.Scales {
				tens.u32(math.Float32bits(s))
			}
			for _, z := range t.Quant.ZeroPoints {
				tens.i32(z)
			}
		}
		if t.Data == nil {
			tens.u8(0)
			continue
		}
		for len(data.b)%align != 0 {
			data.u8(0)
		}
		tens.u8(1)
		tens.u64(uint64(len(data.b)))
		tens.u64(uint64(len(t.Data)))
		data.b = append(data.b, t.Data...)
	}
	// ops
	var ops writer
	ops.u32(uint32(len(m.Ops)))
	for i := range m.Ops {
		op := &m.Ops[i]
		ops.u8(uint8(op.Kind))
		ops.u8(uint8(op.Act))
		ops.str(op.Name)
		for _, list := range [][]int{op.Inputs, op.Outputs} {
			ops.u8(uint8(len(list)))
			for _, t := range list {
				ops.u32(uint32(t))
			}
		}
		for _, a := range op.attrs() {
			ops.i32(int32(a))
		}
		if op.Kind.IsLM() {
			for _, a := range op.LM.encode() {
				ops.i32(a)
			}
		}
	}

	sections := [numSections][]byte{meta.b, tens.b, ops.b, data.b}
	var offs [numSections]int
	end := alignUp(headerCRCEnd)
	for i, s := range sections {
		offs[i] = end
		end = alignUp(end + len(s))
		if i == numSections-1 {
			end = offs[i] + len(s)
		}
	}
	out := make([]byte, end)
	copy(out, Magic)
	binary.LittleEndian.PutUint16(out[8:], Version)
	binary.LittleEndian.PutUint16(out[10:], 0)
	binary.LittleEndian.PutUint32(out[12:], numSections)
	for i, s := range sections {
		e := out[headerFixed+i*sectionEntry:]
		binary.LittleEndian.PutUint32(e[0:], uint32(i+1))
		binary.LittleEndian.PutUint32(e[4:], 0)
		binary.LittleEndian.PutUint64(e[8:], uint64(offs[i]))
		binary.LittleEndian.PutUint64(e[16:], uint64(len(s)))
		binary.LittleEndian.PutUint32(e[24:], crc32.Checksum(s, castagnoli))
		binary.LittleEndian.PutUint32(e[28:], 0)
		copy(out[offs[i]:], s)
	}
	binary.LittleEndian.PutUint32(out[headerLen:], crc32.Checksum(out[:headerLen], castagnoli))
	return out
}

func (op *Op) attrs() [numOpAttrs]int {
	return [numOpAttrs]int{op.StrideH, op.StrideW, op.PadTop, op.PadLeft, op.PadBottom, op.PadRight, op.KernelH, op.KernelW, op.Groups}
}

func (op *Op) setAttrs(a [numOpAttrs]int) {
	op.StrideH, op.StrideW, op.PadTop, op.PadLeft, op.PadBottom, op.PadRight, op.KernelH, op.KernelW, op.Groups =
		a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
}

// reader reads little-endian values with bounds checks; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
	sec string
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s section at byte %d: %s", ErrFormat, r.sec, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.remaining() {
		r.fail("need %d bytes, %d left", n, r.remaining())
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (r *reader) i32() int32 { return int32(r.u32()) }

func (r *reader) str() string {
	n := r.u32()
	if n > MaxStringLen {
		r.fail("string of %d bytes (limit %d)", n, MaxStringLen)
		return ""
	}
	return string(r.take(int(n)))
}

// count reads a uint32 count of items that each take at least minSize bytes and checks it against
// the bytes left, so that no allocation exceeds what the file justifies.
func (r *reader) count(what string, minSize int) int {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(r.remaining()) {
		r.fail("%d %s need at least %d bytes, %d left", n, what, uint64(n)*uint64(minSize), r.remaining())
		return 0
	}
	return int(n)
}

// Decode parses and validates a model file. Every error wraps ErrFormat (malformed bytes) or is a
// validation error from Model.Validate (well-formed bytes describing an invalid model).
func Decode(b []byte) (*Model, error) {
	if n := min(len(b), len(Magic)); string(b[:n]) != Magic[:n] {
		if kind := filekind.Describe(b); kind != "" {
			return nil, fmt.Errorf("%w: bad magic %q: %s, not a qatgo model file (which starts with %q)", ErrFormat, b[:n], kind, Magic)
		}
		return nil, fmt.Errorf("%w: bad magic %q (not a qatgo model file)", ErrFormat, b[:n])
	}
	if len(b) < headerCRCEnd {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrFormat, len(b), headerCRCEnd)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != Version {
		return nil, fmt.Errorf("%w: format version %d, this build reads version %d", ErrFormat, v, Version)
	}
	if got, want := crc32.Checksum(b[:headerLen], castagnoli), binary.LittleEndian.Uint32(b[headerLen:]); got != want {
		return nil, fmt.Errorf("%w: header checksum %08x, stored %08x (file corrupt)", ErrFormat, got, want)
	}
	if f := binary.LittleEndian.Uint16(b[10:]); f != 0 {
		return nil, fmt.Errorf("%w: unknown header flags %#x", ErrFormat, f)
	}
	if n := binary.LittleEndian.Uint32(b[12:]); n != numSections {
		return nil, fmt.Errorf("%w: %d sections, want %d", ErrFormat, n, numSections)
	}
	var secs [numSections][]byte
	prevEnd := uint64(headerCRCEnd)
	names := [numSections]string{"metadata", "tensor", "op", "data"}
	for i := range secs {
		e := b[headerFixed+i*sectionEntry:]
		kind, flags := binary.LittleEndian.Uint32(e[0:]), binary.LittleEndian.Uint32(e[4:])
		off, n := binary.LittleEndian.Uint64(e[8:]), binary.LittleEndian.Uint64(e[16:])
		crc, res := binary.LittleEndian.Uint32(e[24:]), binary.LittleEndian.Uint32(e[28:])
		if kind != uint32(i+1) || flags != 0 || res != 0 {
			return nil, fmt.Errorf("%w: section %d: kind %d flags %#x reserved %#x, want kind %d and zeros", ErrFormat, i, kind, flags, res, i+1)
		}
		if off%align == 0 && off >= prevEnd && (off > uint64(len(b)) || n > uint64(len(b))-off) {
			return nil, fmt.Errorf("%w: %s section at offset %d length %d ends past the end of the %d-byte file (file truncated?)", ErrFormat, names[i], off, n, len(b))
		}
		if off%align != 0 || off < prevEnd || off > uint64(len(b)) || n > uint64(len(b))-off {
			return nil, fmt.Errorf("%w: %s section at offset %d length %d outside the %d-byte file or misplaced", ErrFormat, names[i], off, n, len(b))
		}
		for _, p := range b[prevEnd:off] {
			if p != 0 {
				return nil, fmt.Errorf("%w: nonzero padding before the %s section", ErrFormat, names[i])
			}
		}
		secs[i] = b[off : off+n]
		if got := crc32.Checksum(secs[i], castagnoli); got != crc {
			return nil, fmt.Errorf("%w: %s section checksum %08x, stored %08x (file corrupt)", ErrFormat, names[i], got, crc)
		}
		prevEnd = off + n
	}
	if prevEnd != uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the data section", ErrFormat, uint64(len(b))-prevEnd)
	}

	m := &Model{}
	// metadata
	r := &reader{b: secs[0], sec: "metadata"}
	m.Name = r.str()
	m.Producer = r.str()
	for _, dst := range []*[]int{&m.Inputs, &m.Outputs} {
		n := r.count("tensor indices", 4)
		if n > 0 {
			*dst = make([]int, n)
			for j := range *dst {
				(*dst)[j] = int(r.u32())
			}
		}
	}
	if n := r.count("labels", 4); n > 0 {
		m.Labels = make([]string, n)
		for j := range m.Labels {
			m.Labels[j] = r.str()
		}
	}
	if n := r.count("metadata entries", 8); n > 0 {
		m.Meta = make(map[string]string, n)
		prev := ""
		for j := 0; j < n && r.err == nil; j++ {
			k := r.str()
			if j > 0 && k <= prev {
				r.fail("metadata keys not sorted and unique (%q after %q)", k, prev)
			}
			prev = k
			m.Meta[k] = r.str()
		}
	}
	if r.err == nil && r.remaining() != 0 {
		r.fail("%d unread bytes", r.remaining())
	}
	if r.err != nil {
		return nil, r.err
	}

	// tensors
	data := secs[3]
	r = &reader{b: secs[1], sec: "tensor"}
	const minTensor = 4 + 1 + 1 + 4 + 1 // name length, dtype, rank, qparam count, data flag
	nt := r.count("tensors", minTensor)
	if nt > 0 {
		m.Tensors = make([]Tensor, nt)
	}
	type span struct{ off, n uint64 }
	spans := make([]span, 0, nt)
	dataOff := make([]uint64, nt)
	for i := 0; i < nt && r.err == nil; i++ {
		t := &m.Tensors[i]
		t.Name = r.str()
		t.DType = DType(r.u8())
		rank := int(r.u8())
		if rank > MaxRank {
			r.fail("tensor %d: rank %d > %d", i, rank, MaxRank)
			break
		}
		if r.remaining() < 4*rank {
			r.fail("tensor %d: truncated shape", i)
			break
		}
		t.Shape = make([]int, rank)
		for j := range t.Shape {
			d := r.u32()
			if d > math.MaxInt32 {
				r.fail("tensor %d: dimension %d too large", i, d)
			}
			t.Shape[j] = int(d)
		}
		if nq := r.count("scales", 8); nq > 0 {
			q := &QParams{Axis: int(r.i32()), Scales: make([]float32, nq), ZeroPoints: make([]int32, nq)}
			for j := range q.Scales {
				q.Scales[j] = math.Float32frombits(r.u32())
			}
			for j := range q.ZeroPoints {
				q.ZeroPoints[j] = r.i32()
			}
			t.Quant = q
		}
		switch flag := r.u8(); flag {
		case 0:
		case 1:
			off, n := r.u64(), r.u64()
			if r.err != nil {
				break
			}
			if off%align != 0 || off > uint64(len(data)) || n > uint64(len(data))-off || n == 0 {
				r.fail("tensor %d (%q): data at offset %d length %d outside the %d-byte data section or unaligned", i, t.Name, off, n, len(data))
				break
			}
			spans = append(spans, span{off, n})
			dataOff[i] = off
			t.Data = data[off : off+n : off+n]
		default:
			r.fail("tensor %d: data flag %d", i, flag)
		}
	}
	if r.err == nil && r.remaining() != 0 {
		r.fail("%d unread bytes", r.remaining())
	}
	if r.err != nil {
		return nil, r.err
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	for i := 1; i < len(spans); i++ {
		if spans[i].off < spans[i-1].off+spans[i-1].n {
			return nil, fmt.Errorf("%w: tensor data ranges overlap at offset %d", ErrFormat, spans[i].off)
		}
	}
	// One copy of the data section, shared by the constant tensors (their slices cannot grow into each other).
	if len(data) > 0 {
		own := append([]byte(nil), data...)
		for i := range m.Tensors {
			t := &m.Tensors[i]
			if t.Data != nil {
				off := int(dataOff[i])
				t.Data = own[off : off+len(t.Data) : off+len(t.Data)]
			}
		}
	}

	// ops
	r = &reader{b: secs[2], sec: "op"}
	const minOp = 1 + 1 + 4 + 1 + 1 + 4*numOpAttrs
	no := r.count("ops", minOp)
	if no > 0 {
		m.Ops = make([]Op, no)
	}
	for i := 0; i < no && r.err == nil; i++ {
		op := &m.Ops[i]
		op.Kind = OpKind(r.u8())
		op.Act = Activation(r.u8())
		op.Name = r.str()
		for _, dst := range []*[]int{&op.Inputs, &op.Outputs} {
			n := int(r.u8())
			if r.remaining() < 4*n {
				r.fail("op %d: truncated tensor list", i)
				break
			}
			*dst = make([]int, n)
			for j := range *dst {
				(*dst)[j] = int(r.u32())
			}
		}
		var a [numOpAttrs]int
		for j := range a {
			a[j] = int(r.i32())
		}
		op.setAttrs(a)
		if op.Kind.IsLM() {
			var la [numLMAttrs]int32
			for j := range la {
				la[j] = r.i32()
			}
			op.LM.decode(la)
		}
	}
	if r.err == nil && r.remaining() != 0 {
		r.fail("%d unread bytes", r.remaining())
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// WriteFile encodes m and writes it to path atomically (WriteFileAtomic).
func WriteFile(path string, m *Model) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes data to path atomically: a temporary file in the same directory is
// written, synced, given mode 0644 and renamed over path, so readers see either the old file or
// the complete new one. It calls the module's one atomic writer (internal/atomicfile).
func WriteFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("qmodel: %w", err)
	}
	return nil
}

// MaxFileSize bounds the files ReadFile accepts (4 GiB).
const MaxFileSize = 1 << 32

// ReadFile reads and decodes a model file.
func ReadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("qmodel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("qmodel: %w", err)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("qmodel: %s: %d bytes, larger than the %d-byte limit", path, st.Size(), int64(MaxFileSize))
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("qmodel: %w", err) // an *os.PathError: it names the operation and the path
	}
	m, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
