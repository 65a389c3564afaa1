// Package lmspec is a second, independent implementation of the integer language-model runtime's
// arithmetic, written from the op specifications (qmodel's LM op docs and multiplier functions,
// the quant package's rounding rule) and not from package infer or kernels, which it does not
// import. Each op is a slow, plain loop over exact integers (math/big where a product or a
// square root could leave 64 bits), one op per file:
//
//	embedding.go   Embedding: table row (int4 groups scaled) requantized per row
//	rmsnorm.go     RMSNorm: integer mean square, integer square root, per-channel multiplier
//	linear.go      Linear (int8 output) and LMHead (int32 output)
//	rope.go        RoPE: Q30 cos/sin tables, Q15 rounding, one multiplier
//	attention.go   Attention: KV-cache write and clamp, integer scores, Q20 exponentials, average
//	exp.go         the attention's 2^(-u) in Q20 from a 257-entry table and linear interpolation
//	swiglu.go      SwiGLU: 256-entry SiLU table times the up input
//	hadamard.go    Hadamard: exact Walsh-Hadamard transform, one multiplier
//	add.go         the residual Add (TFLite's scheme)
//	dequantize.go  Dequantize of the logits (int32) or of an int8 tensor
//
// Runner runs one op of a model at a time over a sequence of token rows at positions 0, 1, ...
// (an Attention op writes the sequence's keys and values into a fresh cache first), as
// infer.LMOpRunner does. Its tests check every op bit for bit against infer's: two
// implementations of one contract checking each other. Package export uses it as the
// arithmetic of the fake-quant evaluation graph between the quantization points.
package lmspec
