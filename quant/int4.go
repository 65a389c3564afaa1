package quant

// PackInt4 packs signed 4-bit values (each in [-8,7]) two per byte: element 2i in the low nibble,
// element 2i+1 in the high nibble. An odd count leaves the last high nibble zero.
// dst must have at least (len(src)+1)/2 bytes; PackInt4 returns dst[:(len(src)+1)/2].
func PackInt4(dst []byte, src []int8) []byte {
	n := (len(src) + 1) / 2
	dst = dst[:n]
	for i := range dst {
		lo := byte(src[2*i]) & 0x0f
		var hi byte
		if 2*i+1 < len(src) {
			hi = byte(src[2*i+1]) & 0x0f
		}
		dst[i] = lo | hi<<4
	}
	return dst
}

// UnpackInt4 reverses PackInt4 for n elements, sign-extending each nibble. dst must hold n values.
func UnpackInt4(dst []int8, src []byte, n int) []int8 {
	dst = dst[:n]
	for i := range dst {
		b := src[i/2]
		if i&1 == 1 {
			b >>= 4
		}
		dst[i] = int8(b<<4) >> 4
	}
	return dst
}
