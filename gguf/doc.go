// Package gguf reads and writes GGUF files, the model container of llama.cpp (ggml), and encodes
// and decodes the tensor types qatgo exchanges with it: F32, F16, Q8_0 and Q4_0.
//
// # Container (GGUF version 3, little-endian)
//
//	"GGUF", u32 version = 3, u64 tensor count, u64 key-value count
//	key-values:   string key, u32 value type, value
//	tensor infos: string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset
//	zero padding to the alignment, then the tensor data
//
// A string is a u64 byte length followed by the bytes (no NUL). An array value is a u32 element
// type, a u64 count and the elements. The alignment is 32 unless the key "general.alignment"
// (u32, a power of two) says otherwise. ne[0] is the contiguous dimension: a row-major matrix
// [rows][cols] has ne = [cols, rows]. Each tensor's offset, relative to the start of the data
// section, must be the running sum of the sizes of the tensors before it, each padded to the
// alignment: llama.cpp rejects any other layout, and so do [Decode] and [File.Encode].
//
// # Tensor types
//
// Q8_0 and Q4_0 hold blocks of 32 consecutive values of a row with an IEEE half-precision scale
// d: Q8_0 stores int8 q with value d*q (34 bytes per block); Q4_0 stores 4-bit n with value
// d*(n-8), packed so that the low nibble of byte j is element j and the high nibble element
// j+16 (18 bytes per block). [QuantizeQ8_0] and [QuantizeQ4_0] are llama.cpp's reference
// quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref) in the same float32 operations, so
// they produce the same bytes. [QuantizeActQ8_0] is the different Q8_0 rounding llama.cpp's CPU
// backend applies to the activation vector of a matmul with Q8_0/Q4_0 weights.
//
// # Untrusted input
//
// [Decode] validates everything before it allocates: counts and lengths are bounded by the
// bytes that remain, dimensions by GGML's limits (at most 4, each at least 1, total size within
// the file), and every error names what was wrong and where. Tensor data is not copied: the
// tensors of a decoded file alias the input bytes.
//
// The package imports only the standard library.
package gguf
