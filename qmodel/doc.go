// Package qmodel is qatgo's integer model: the intermediate representation (IR) that the exporter
// produces and the runtime (package infer) executes, and its file format.
//
// # The IR
//
// A Model is a list of tensors and a list of ops in execution order. A tensor has a name, a data type
// (float32, int8, uint8, int32 or int4 packed two per byte), a shape, optional quantization
// parameters (per tensor, or per channel along one axis: float32 scales and int32 zero points,
// real = scale*(q-zeroPoint), see package quant) and, for constants (weights and biases), its data.
// Tensors without data are activations.
//
// Activation shapes are per sample: they do not include the batch dimension, which the runtime adds
// (so one model file serves every batch size). A convolution input has shape [H, W, C] (NHWC without
// N), a fully connected input [K]. Constant shapes are complete: Conv2D weights [OutC, KH, KW, InC/Groups],
// FullyConnected weights [N, K], biases [N].
//
// Ops (see OpKind): Quantize (float32 or uint8 input -> int8), Conv2D (NHWC, stride, explicit padding
// that reads as the input zero point, depthwise via Groups == InC == OutC), FullyConnected, MaxPool2D,
// AvgPool2D (average rounded half away from zero, over the valid window), Add (both inputs rescaled to
// the output scale, TFLite's scheme), Reshape, Softmax (int8 in, int8 out with scale 1/256 and zero point
// -128, over the last axis; meant for the model output) and Dequantize (int8 -> float32). Conv2D,
// FullyConnected, pools and Add carry a fused activation (none, ReLU, ReLU6) that becomes the clamp
// bounds of the output (ActivationRange).
//
// Language-model ops (lm.go): Embedding, RMSNorm, Linear, RoPE, Attention (causal, int8 KV cache with
// per-head scales), SwiGLU, Hadamard and LMHead. Their activations are per token ([D]); a language
// model has one int32 token-id input of shape [1] and one float32 logits output (LMHead's int32
// accumulators through Dequantize). LM ops carry seven further attributes in the file (LMAttrs).
// Validate bounds what they make a runtime allocate: context length (MaxContext), KV cache
// (MaxKVCacheBytes), RoPE tables (MaxRoPETable), Hadamard blocks (MaxHadamard), group scales.
//
// # Requantization multipliers: one source of truth
//
// The file stores float32 scales only. The Q31 multipliers and shifts of the integer runtime are derived
// when a model is validated or loaded, with quant.QuantizeMultiplier, by the functions of this package
// (ConvMultipliers, RescaleMultiplier, AddMultipliers). Validate rejects a model whose scales would give a
// multiplier that QuantizeMultiplier cannot represent (shift out of range), so the runtime never meets one.
//
// # The file format (version 1, little-endian)
//
//	offset 0    magic "QATGOMDL" (8 bytes)
//	offset 8    version uint16 (1), flags uint16 (0), section count uint32 (4)
//	offset 16   section table: 4 entries of 32 bytes, in this order: metadata, tensors, ops, data;
//	            each {kind uint32, flags uint32 (0), offset uint64, length uint64, crc32c uint32, reserved uint32}
//	offset 144  CRC32C (Castagnoli) of bytes [0, 144)
//	            zero padding; every section starts at a multiple of 64; sections follow each other in the
//	            table's order, separated by zero padding only; the file ends where the data section ends.
//
// Each section's CRC32C covers its bytes. Inside sections, integers are little-endian, strings are a
// uint32 byte length followed by UTF-8 bytes. The data section holds the constant tensors' bytes, each
// at an offset (relative to the section) that is a multiple of 64, so tensor data is 64-byte aligned in the
// file; ranges never overlap. Int8/uint8 data is one byte per element, int32 and float32 four bytes
// little-endian, int4 two elements per byte (element 2i in the low nibble, quant.PackInt4).
//
// Decode validates everything (counts, offsets, lengths, CRCs, shapes, data types, quantization
// parameters, derived multipliers, op wiring and shapes) before it returns a model; it never panics
// on any input and it checks every count against the bytes left before allocating for it. Encode
// validates first and is deterministic, so Decode(Encode(m)) equals m and re-encoding reproduces the
// same bytes. WriteFile writes atomically (temporary file in the same directory, fsync, rename).
//
// The package imports only the standard library and qatgo/quant.
package qmodel
