package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// QK is the number of values in a Q8_0 or Q4_0 block.
const QK = 32

// Block sizes in bytes.
const (
	Q8_0BlockBytes = 2 + QK   // f16 scale, 32 int8
	Q4_0BlockBytes = 2 + QK/2 // f16 scale, 16 bytes of nibbles
)

// Q8_0Scale returns llama.cpp's reference Q8_0 scale of one block, d = amax/127 in float32,
// and its reciprocal id (0 for an all-zero block). The file stores fp16(d); the values are
// quantized with id, which is 1/d of the unrounded d.
func Q8_0Scale(x []float32) (d, id float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d = amax / 127
	if d != 0 {
		id = 1 / d
	}
	return d, id
}

// QuantizeQ8_0Block quantizes one block of 32 values the way llama.cpp's reference quantizer
// (quantize_row_q8_0_ref) does: d = amax/127, q = round(x * (1/d)) with ties away from zero,
// scale stored as fp16(d). It returns the stored scale bits and fills q.
func QuantizeQ8_0Block(x []float32, q *[QK]int8) uint16 {
	d, id := Q8_0Scale(x[:QK])
	for j := 0; j < QK; j++ {
		q[j] = int8(clampRound(float32(x[j]*id), math.Round, -128, 127))
	}
	return F16FromFloat32(d)
}

// Q4_0Scale returns llama.cpp's reference Q4_0 scale of one block, d = max/-8 where max is the
// first value of largest magnitude (sign kept), and its reciprocal id (0 for an all-zero block).
func Q4_0Scale(x []float32) (d, id float32) {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax, mx = abs32(v), v
		}
	}
	d = mx / -8
	if d != 0 {
		id = 1 / d
	}
	return d, id
}

// QuantizeQ4_0Block quantizes one block of 32 values the way quantize_row_q4_0_ref does:
// d = max/-8, n = min(15, trunc(x*(1/d) + 8.5)), value d*(n-8), scale stored as fp16(d). It
// returns the stored scale bits and fills n with the 4-bit codes 0..15 in element order.
func QuantizeQ4_0Block(x []float32, n *[QK]uint8) uint16 {
	d, id := Q4_0Scale(x[:QK])
	for j := 0; j < QK; j++ {
		n[j] = uint8(clampRound(float32(x[j]*id)+8.5, math.Trunc, 0, 15))
	}
	return F16FromFloat32(d)
}

// QuantizeActQ8_0Block quantizes one block of 32 activations the way llama.cpp's CPU backend
// quantizes the input of a matmul with Q8_0 or Q4_0 weights (quantize_row_q8_0 on x86 and its
// repacked variants): q = roundeven(x * (127/amax)), scale stored as fp16(amax/127). It differs
// from [QuantizeQ8_0Block] in the multiplier (127/amax, not 1/(amax/127)) and in rounding ties
// to even.
func QuantizeActQ8_0Block(x []float32, q *[QK]int8) uint16 {
	var amax float32
	for _, v := range x[:QK] {
		amax = max(amax, abs32(v))
	}
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j := 0; j < QK; j++ {
		q[j] = int8(clampRound(float32(x[j]*id), math.RoundToEven, -128, 127))
	}
	return F16FromFloat32(amax / 127)
}

// clampRound rounds v with round and clamps it to [lo, hi]; NaN gives 0 (C leaves those cases
// undefined; finite inputs never reach the clamp).
func clampRound(v float32, round func(float64) float64, lo, hi float64) int {
	r := round(float64(v))
	if r != r {
		return 0
	}
	return int(min(max(r, lo), hi))
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// Quantize encodes x, a whole number of rows of ne0 values, as tensor type t (F32, F16, Q8_0
// or Q4_0; for the quantized types ne0 must be a multiple of 32 and blocks run along rows).
func Quantize(t TensorType, x []float32, ne0 int) ([]byte, error) {
	if ne0 < 1 || len(x)%ne0 != 0 {
		return nil, fmt.Errorf("gguf: %d values are not whole rows of %d", len(x), ne0)
	}
	switch t {
	case F32:
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case F16:
		b := make([]byte, 2*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint16(b[2*i:], F16FromFloat32(v))
		}
		return b, nil
	case Q8_0, Q4_0:
	default:
		return nil, fmt.Errorf("gguf: cannot quantize to %v (F32, F16, Q8_0, Q4_0 only)", t)
	}
	if ne0%QK != 0 {
		return nil, fmt.Errorf("gguf: %v needs rows of a multiple of %d values, got %d", t, QK, ne0)
	}
	nb := len(x) / QK
	if t == Q8_0 {
		b := make([]byte, nb*Q8_0BlockBytes)
		var q [QK]int8
		for i := 0; i < nb; i++ {
			blk := b[i*Q8_0BlockBytes:]
			binary.LittleEndian.PutUint16(blk, QuantizeQ8_0Block(x[i*QK:], &q))
			for j, v := range q {
				blk[2+j] = byte(v)
			}
		}
		return b, nil
	}
	b := make([]byte, nb*Q4_0BlockBytes)
	var n [QK]uint8
	for i := 0; i < nb; i++ {
		blk := b[i*Q4_0BlockBytes:]
		binary.LittleEndian.PutUint16(blk, QuantizeQ4_0Block(x[i*QK:], &n))
		for j := 0; j < QK/2; j++ {
			blk[2+j] = n[j] | n[j+QK/2]<<4
		}
	}
	return b, nil
}

// Dequantize decodes n values of type t (F32, F16, Q8_0 or Q4_0) from b.
func Dequantize(t TensorType, b []byte, n int) ([]float32, error) {
	bs, sz := t.BlockSize(), t.BlockBytes()
	switch t {
	case F32, F16, Q8_0, Q4_0:
	default:
		return nil, fmt.Errorf("gguf: cannot decode %v (F32, F16, Q8_0, Q4_0 only)", t)
	}
	if n < 0 || n%bs != 0 || len(b) != n/bs*sz {
		return nil, fmt.Errorf("gguf: %d bytes do not hold %d values of %v", len(b), n, t)
	}
	x := make([]float32, n)
	switch t {
	case F32:
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		for i := range x {
			x[i] = F16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case Q8_0:
		for i := 0; i < n/QK; i++ {
			blk := b[i*Q8_0BlockBytes:]
			d := F16ToFloat32(binary.LittleEndian.Uint16(blk))
			for j := 0; j < QK; j++ {
				x[i*QK+j] = d * float32(int8(blk[2+j]))
			}
		}
	case Q4_0:
		for i := 0; i < n/QK; i++ {
			blk := b[i*Q4_0BlockBytes:]
			d := F16ToFloat32(binary.LittleEndian.Uint16(blk))
			for j := 0; j < QK/2; j++ {
				x[i*QK+j] = d * float32(int(blk[2+j]&15)-8)
				x[i*QK+j+QK/2] = d * float32(int(blk[2+j]>>4)-8)
			}
		}
	}
	return x, nil
}

// Float32s decodes the values of an F32, F16, Q8_0 or Q4_0 tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	n := t.Elements()
	if n > math.MaxInt32*8 {
		return nil, fmt.Errorf("gguf: tensor %q has %d values", t.Name, n)
	}
	x, err := Dequantize(t.Type, t.Data, int(n))
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	return x, nil
}
