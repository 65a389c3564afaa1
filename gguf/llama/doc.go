// Package llama maps Llama-architecture language models to and from GGUF files that
// llama.cpp (and the tools built on it: ollama, LM Studio, node-llama-cpp) load.
//
// [Weights] is the format-neutral middle: the hyper-parameters llama.cpp reads from the
// "llama.*" metadata and the float32 tensors under their GGUF names. [Encode] writes Weights as a
// GGUF file of a chosen tensor type (F32, F16, Q8_0 or Q4_0; norm gains always F32) with a
// byte-level tokenizer that round-trips in llama.cpp; [Decode] reads a llama GGUF file (F32, F16,
// Q8_0 or Q4_0 tensors) back, keeping its tokenizer metadata. The adapter in lm.go converts
// Weights to and from qatgo's [graph.LM]; nothing else in this package depends on the LM's API.
//
// # Conventions llama.cpp requires (checked against its source and prebuilt library)
//
//   - Tensor names: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
//     ffn_gate, ffn_up, ffn_down}, output_norm, output (all ".weight"); the set must be exact.
//   - A row-major weight [out][in] is written with ne = [in, out]: its rows are the data as is.
//   - llama.cpp's LLAMA_ROPE_TYPE_NORM rotates adjacent pairs (2j, 2j+1) of each head, as
//     graph.LM does, so W_q and W_k need no row permutation.
//   - Counts are u32, floats f32; the byte vocabulary uses the "gpt2" tokenizer with no merges and
//     token i = the GPT-2 byte-to-unicode image of byte i, so token ids are byte values.
//
// Quantized types quantize blocks of 32 along each row (the input dimension) with llama.cpp's
// reference quantizers (package gguf), so a model trained with the matching fake-quant preset
// ([Preset]) computes in llama.cpp what it computed in qatgo. The token embedding stays F32 unless
// EncodeOptions.EmbedType says otherwise.
//
// # How close the preset's forward is to llama.cpp
//
// [Preset] reproduces, besides the roundings of weights, matmul inputs and (Preset.KV = F16) the
// KV cache, the float32 arithmetic of llama.cpp's x86 CPU backend wherever it decides the value a
// later Q8_0 rounding sees: the matmul accumulation (fakequant.GGMLLinear: the repacked Q4_0 GEMM
// or the eight-lane Q8_0 dot product), RMSNorm and SwiGLU with ggml's vectorised expf
// (fakequant.GGMLRMSNorm, GGMLSwiGLU, AVX-512 form). The attention (RoPE, softmax, the F32/F16
// K and V products) is Gorgonia's float arithmetic. An activation within one float32 rounding of a
// Q8_0 rounding boundary can therefore still round the other way in llama.cpp; measured on the
// QAT-trained test model, 3 of 576 positions (8 sequences of 72) differ by more than 1e-3 (up to
// 0.03), against 19 before the arithmetic was matched. llama.cpp does not agree with itself at
// that level either: its AVX2 (haswell) and AVX-512 (zen4, skylakex) builds of ggml_v_expf round
// differently (vec.h: fma(j, k, k) against scalef(j+1, n)), and its AVX2 build differed from its
// AVX-512 build at 1 of the same 576 positions by 0.012; its portable x64 build, which sums the
// Q4_0 dot products in another order, at 8.
package llama
