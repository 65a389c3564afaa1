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
// ([Preset], which is qat.GGMLPreset) computes in llama.cpp what it computed in qatgo. The token
// embedding stays F32 unless EncodeOptions.EmbedType says otherwise. A model prepared with
// qat.GGMLPreset{..., LearnScale: true}.QConfig() learns its fp16 block scales; [FromPrepared]
// returns the weights its fake-quant forward used and EncodeOptions.Exact writes them block for
// block exactly (gguf.QuantizeExact).
//
// # How close the preset's forward is to llama.cpp
//
// [Preset] reproduces, besides the roundings of weights, matmul inputs and (Preset.KV = F16) the
// KV cache, the float32 arithmetic of llama.cpp's x86 CPU backend (its AVX-512 build, which
// node-llama-cpp loads on AVX-512 CPUs: libggml-cpu-zen4 here) wherever it decides the value a
// later Q8_0 rounding sees: the matmul accumulation (fakequant.GGMLLinear: the repacked Q4_0 GEMM
// or the eight-lane Q8_0 dot product), RMSNorm and SwiGLU with ggml's vectorised expf
// (fakequant.GGMLRMSNorm, GGMLSwiGLU) and the attention (fakequant.GGMLAttention: ggml's RoPE
// angle recurrence with glibc's sincosf reproduced bit for bit, ggml_vec_dot_f32 and tinyBLAS
// summation orders, ggml's softmax). With all of it, the QAT-trained test model's next-token
// log-probabilities in llama.cpp equal qatgo's fake-quant forward within 3e-6 at every position
// (F32 and F16 KV cache), where 3 of 576 positions differed by up to 0.03 while the attention was
// Gorgonia's float arithmetic. The match is to the build: llama.cpp's AVX2 (haswell) and AVX-512
// builds of ggml_v_expf round differently (vec.h: fma(j, k, k) against scalef(j+1, n)), and
// they differed from each other at 1 of those 576 positions by 0.012; its portable x64 build,
// which sums the Q4_0 dot products in another order, at 8. On an Intel CPU with AMX,
// node-llama-cpp picked libggml-cpu-sapphirerapids, which moved the Q8_0 test model's
// log-probabilities by up to 0.011 at 1 of 288 positions (and an independently written file's
// by 7e-4); .ci/run therefore keeps only the zen4, haswell and x64 builds, so that ggml loads
// the zen4 build wherever the CPU has its AVX-512 features. Decoding one token at a time,
// llama.cpp sums the attention with ggml_vec_dot_f32 rather than tinyBLAS, which can differ in
// the last bit; the tests compare whole-sequence evaluations and greedy continuations.
package llama
