package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/qatgo/qatgo/onnx/onnxpb"
)

// MaxTensorElements bounds the element count of one tensor a reader accepts (256 Mi elements).
const MaxTensorElements = 1 << 28

// constTensor is a decoded initializer or Constant: float32 or int64 values with their dims.
type constTensor struct {
	dims []int
	f32  []float32 // FLOAT
	i64  []int64   // INT64 (shapes)
}

func (c *constTensor) size() int { return shapeSize(c.dims) }

func shapeSize(d []int) int {
	n := 1
	for _, v := range d {
		n *= v
	}
	return n
}

// decodeTensor decodes a FLOAT or INT64 tensor, checking dims against the data present before
// allocating anything in proportion to them.
func decodeTensor(t *onnxpb.TensorProto) (*constTensor, error) {
	if t.DataLocation != nil && t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: external data is not supported", t.GetName())
	}
	c := &constTensor{}
	n := 1
	for _, d := range t.GetDims() {
		if d < 0 || d > MaxTensorElements {
			return nil, fmt.Errorf("tensor %q: dimension %d", t.GetName(), d)
		}
		n *= int(d)
		if n > MaxTensorElements {
			return nil, fmt.Errorf("tensor %q: more than %d elements", t.GetName(), MaxTensorElements)
		}
		c.dims = append(c.dims, int(d))
	}
	raw := t.GetRawData()
	switch t.GetDataType() {
	case int32(onnxpb.TensorProto_FLOAT):
		switch {
		case len(raw) > 0:
			if len(raw) != 4*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d float32 values", t.GetName(), len(raw), n)
			}
			c.f32 = make([]float32, n)
			for i := range c.f32 {
				c.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case len(t.GetFloatData()) == n:
			c.f32 = append([]float32(nil), t.GetFloatData()...)
		default:
			return nil, fmt.Errorf("tensor %q: %d float values for dims %v", t.GetName(), len(t.GetFloatData()), c.dims)
		}
	case int32(onnxpb.TensorProto_INT64):
		switch {
		case len(raw) > 0:
			if len(raw) != 8*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d int64 values", t.GetName(), len(raw), n)
			}
			c.i64 = make([]int64, n)
			for i := range c.i64 {
				c.i64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		case len(t.GetInt64Data()) == n:
			c.i64 = append([]int64(nil), t.GetInt64Data()...)
		default:
			return nil, fmt.Errorf("tensor %q: %d int64 values for dims %v", t.GetName(), len(t.GetInt64Data()), c.dims)
		}
	default:
		return nil, fmt.Errorf("tensor %q: element type %s (only FLOAT weights and INT64 shapes are read)",
			t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	return c, nil
}
