package graph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/qatgo/qatgo/internal/atomicfile"
	"github.com/qatgo/qatgo/internal/filekind"
	"gorgonia.org/tensor"
)

// Checkpoint is a training snapshot: named tensors (parameters, BN buffers, optimizer moments,
// quantizer state; by convention prefixed "param/", "opt/", "quant/"), the step and epoch
// reached, the data-order seed and free-form metadata.
type Checkpoint struct {
	Step    int64
	Epoch   int
	Seed    uint64
	Meta    map[string]string
	Tensors map[string]*tensor.Dense
}

// ErrCheckpoint is wrapped by every error caused by a malformed checkpoint file.
var ErrCheckpoint = errors.New("graph: malformed checkpoint")

const ckptMagic = "QATGOCK1"

type ckptHeader struct {
	Step    int64
	Epoch   int
	Seed    uint64
	Meta    map[string]string `json:",omitempty"`
	Tensors []ckptTensor
}

type ckptTensor struct {
	Name  string
	Dtype string // "f32" or "f64"
	Shape []int
}

// Put stores a copy of t under name.
func (c *Checkpoint) Put(name string, t *tensor.Dense) {
	if c.Tensors == nil {
		c.Tensors = map[string]*tensor.Dense{}
	}
	c.Tensors[name] = t.Clone().(*tensor.Dense)
}

// PutFloat32s stores a copy of v as a vector under name.
func (c *Checkpoint) PutFloat32s(name string, v []float32) {
	c.Put(name, tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(slices.Clone(v))))
}

// CopyTo copies the tensor stored under name into dst, which must have the same dtype and shape.
func (c *Checkpoint) CopyTo(name string, dst *tensor.Dense) error {
	t, ok := c.Tensors[name]
	if !ok {
		return fmt.Errorf("graph: checkpoint has no tensor %q", name)
	}
	if t.Dtype() != dst.Dtype() || !t.Shape().Eq(dst.Shape()) {
		return fmt.Errorf("graph: checkpoint tensor %q is %v %v, want %v %v", name, t.Dtype(), t.Shape(), dst.Dtype(), dst.Shape())
	}
	return tensor.Copy(dst, t)
}

// Float32s returns the data of the float32 tensor stored under name, or nil.
func (c *Checkpoint) Float32s(name string) []float32 {
	if t, ok := c.Tensors[name]; ok {
		if d, ok := t.Data().([]float32); ok {
			return d
		}
	}
	return nil
}

// SaveState stores a copy of every model parameter (including BN running statistics) under
// "param/<name>", the model's name in Meta["model"] and its architecture (JSON of Arch) in
// Meta[MetaArch], so that FromCheckpoint rebuilds it.
func (m *Model) SaveState(c *Checkpoint) {
	putArch(c, m.Arch())
	for _, p := range m.params {
		c.Put("param/"+p.Name, p.Value)
	}
}

// LoadState copies every model parameter from "param/<name>" in c; all must be present with
// matching shapes.
func (m *Model) LoadState(c *Checkpoint) error {
	for _, p := range m.params {
		if err := c.CopyTo("param/"+p.Name, p.Value); err != nil {
			return err
		}
	}
	return nil
}

// Encode serialises the checkpoint: magic "QATGOCK1", uint32 header length, JSON header
// (step, epoch, seed, meta, tensor names/dtypes/shapes in name order), the tensor data as
// little-endian IEEE floats in the same order, and a CRC-32 (IEEE) of everything before it.
func (c *Checkpoint) Encode() ([]byte, error) {
	names := make([]string, 0, len(c.Tensors))
	for n := range c.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	h := ckptHeader{Step: c.Step, Epoch: c.Epoch, Seed: c.Seed, Meta: c.Meta}
	var data bytes.Buffer
	for _, n := range names {
		t := c.Tensors[n]
		ct := ckptTensor{Name: n, Shape: t.Shape().Clone()}
		switch d := t.Data().(type) {
		case []float32:
			ct.Dtype = "f32"
			for _, v := range d {
				data.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
			}
		case []float64:
			ct.Dtype = "f64"
			for _, v := range d {
				data.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)))
			}
		case float32:
			ct.Dtype, ct.Shape = "f32", []int{1}
			data.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(d)))
		default:
			return nil, fmt.Errorf("graph: checkpoint tensor %q has unsupported dtype %v", n, t.Dtype())
		}
		h.Tensors = append(h.Tensors, ct)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := append([]byte(ckptMagic), binary.LittleEndian.AppendUint32(nil, uint32(len(hj)))...)
	out = append(out, hj...)
	out = append(out, data.Bytes()...)
	return binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(out)), nil
}

// DecodeCheckpoint parses bytes written by Encode, validating magic, sizes and checksum.
func DecodeCheckpoint(b []byte) (*Checkpoint, error) {
	if !bytes.HasPrefix(b, []byte(ckptMagic)) {
		kind := filekind.Describe(b)
		if kind == "" {
			kind = fmt.Sprintf("starts with %q", b[:min(len(b), len(ckptMagic))])
		}
		return nil, fmt.Errorf("%w: bad magic: %s, not a qatgo checkpoint (which starts with %q)", ErrCheckpoint, kind, ckptMagic)
	}
	if len(b) < len(ckptMagic)+8 {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrCheckpoint, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCheckpoint)
	}
	p := body[len(ckptMagic):]
	hl := binary.LittleEndian.Uint32(p)
	p = p[4:]
	if uint64(hl) > uint64(len(p)) {
		return nil, fmt.Errorf("%w: header length %d exceeds file", ErrCheckpoint, hl)
	}
	var h ckptHeader
	if err := json.Unmarshal(p[:hl], &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCheckpoint, err)
	}
	p = p[hl:]
	c := &Checkpoint{Step: h.Step, Epoch: h.Epoch, Seed: h.Seed, Meta: h.Meta, Tensors: map[string]*tensor.Dense{}}
	for _, ct := range h.Tensors {
		n := 1
		for _, d := range ct.Shape {
			if d < 1 || d > len(p) {
				return nil, fmt.Errorf("%w: tensor %q shape %v", ErrCheckpoint, ct.Name, ct.Shape)
			}
			n *= d
			if n > len(p) {
				return nil, fmt.Errorf("%w: tensor %q larger than file", ErrCheckpoint, ct.Name)
			}
		}
		if _, dup := c.Tensors[ct.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrCheckpoint, ct.Name)
		}
		switch ct.Dtype {
		case "f32":
			if len(p) < 4*n {
				return nil, fmt.Errorf("%w: tensor %q truncated", ErrCheckpoint, ct.Name)
			}
			v := make([]float32, n)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
			}
			p = p[4*n:]
			c.Tensors[ct.Name] = tensor.New(tensor.WithShape(ct.Shape...), tensor.WithBacking(v))
		case "f64":
			if len(p) < 8*n {
				return nil, fmt.Errorf("%w: tensor %q truncated", ErrCheckpoint, ct.Name)
			}
			v := make([]float64, n)
			for i := range v {
				v[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
			}
			p = p[8*n:]
			c.Tensors[ct.Name] = tensor.New(tensor.WithShape(ct.Shape...), tensor.WithBacking(v))
		default:
			return nil, fmt.Errorf("%w: tensor %q dtype %q", ErrCheckpoint, ct.Name, ct.Dtype)
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCheckpoint, len(p))
	}
	return c, nil
}

// SaveCheckpoint writes c to path atomically: it writes a temporary file in the same directory,
// syncs it and renames it over path, so a crash leaves either the old or the new file.
func SaveCheckpoint(path string, c *Checkpoint) error {
	b, err := c.Encode()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("graph: save checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := DecodeCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
