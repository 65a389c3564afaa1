package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// QuantizeExact encodes x (whole rows of ne0 values) as type t like Quantize, for values that are
// already on t's grid, e.g. weights fake-quantized with learned fp16 block scales: every block is
// written so that Dequantize returns its values bit for bit, or it is an error naming the first
// block that t cannot hold exactly. A block the reference quantizer (Quantize) reproduces exactly
// is written as Quantize writes it (the same bytes as llama.cpp's quantizer); otherwise the
// block's scale is recovered from its largest magnitude: d = |x_max|/k for the level count k that
// makes d a half-precision number and every value an integer multiple of d within the type's
// levels (Q4_0: -8..7, the sign of d free; Q8_0: -127..127).
func QuantizeExact(t TensorType, x []float32, ne0 int) ([]byte, error) {
	b, err := Quantize(t, x, ne0)
	if err != nil {
		return nil, err
	}
	if t == F32 {
		return b, nil
	}
	if t == F16 {
		for i, v := range x {
			if RoundF16(v) != v {
				return nil, fmt.Errorf("gguf: value %d (%v) is not a half-precision number", i, v)
			}
		}
		return b, nil
	}
	sz := t.BlockBytes()
	for i := 0; i < len(x)/QK; i++ {
		blk, vals := b[i*sz:(i+1)*sz], x[i*QK:(i+1)*QK]
		got, _ := Dequantize(t, blk, QK)
		if equalBits(got, vals) {
			continue
		}
		if !exactBlock(t, vals, blk) {
			return nil, fmt.Errorf("gguf: block %d (values %d..%d) is not on the %v grid: no half-precision scale and %v levels reproduce it", i, i*QK, (i+1)*QK-1, t, t)
		}
	}
	return b, nil
}

func equalBits(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// exactBlock writes into blk a (d, levels) pair of type t that reproduces vals exactly, if one
// exists.
func exactBlock(t TensorType, vals []float32, blk []byte) bool {
	var m float32
	for _, v := range vals {
		m = max(m, abs32(v))
	}
	lo, hi, kmax := -127, 127, 127
	if t == Q4_0 {
		lo, hi, kmax = -8, 7, 8
	}
	var q [QK]int
	for k := 1; k <= kmax; k++ {
		h := F16FromFloat32(float32(float64(m) / float64(k)))
		if F16ToFloat32(h)*float32(k) != m || F16ToFloat32(h) == 0 {
			continue
		}
		for _, sign := range []uint16{0, 0x8000} {
			d := F16ToFloat32(h | sign)
			ok := true
			for j, v := range vals {
				q[j] = int(math.Round(float64(v) / float64(d)))
				if q[j] < lo || q[j] > hi || d*float32(q[j]) != v {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
			binary.LittleEndian.PutUint16(blk, h|sign)
			if t == Q8_0 {
				for j := range vals {
					blk[2+j] = byte(int8(q[j]))
				}
			} else {
				for j := 0; j < QK/2; j++ {
					blk[2+j] = byte(q[j]+8) | byte(q[j+QK/2]+8)<<4
				}
			}
			return true
		}
	}
	return false
}
