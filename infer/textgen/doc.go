// Package textgen generates and scores text with a language model loaded by infer.LoadLM.
//
// # Sampling
//
// A [Sampler] picks the next token from a vector of logits. At temperature 0 it is greedy: the
// index of the largest logit (the lowest such index on ties, as infer.Argmax). At temperature
// T > 0 it draws token i with probability
//
//	p_i = exp((l_i - max_j l_j)/T) / sum_{j in K} exp((l_j - max_j l_j)/T)   for i in K, 0 otherwise,
//
// where K is the whole vocabulary or, with top-k, the k tokens with the largest logits (ties at
// the boundary go to the lower index). The draw is one uniform number u in [0,1) from a PCG
// generator seeded by SamplerOptions.Seed, walked through the cumulative distribution in token
// order: the same seed, logits and options give the same tokens on every machine. Top-k 1 is
// greedy at any temperature. The arithmetic is float64; NaN logits count as -Inf.
//
// # Generation and the context window
//
// A [Generator] drives an infer.LMSession: it prefills the prompt (batched), then samples a
// token, decodes it and samples the next, calling a function with every token as soon as it is
// chosen (streaming). The last sampled token is not decoded until the next call needs it, so a
// call with a prompt of P tokens and n new tokens needs P+n-1 positions. Without a sliding
// window, a call that does not fit in the context fails before any work with an error wrapping
// infer.ErrContextFull. With GeneratorOptions.Slide, when the next token does not fit the model
// restarts from the last Keep tokens it has seen (default half the context: the session is reset
// and those tokens are prefilled again), so generation can run for any length; positions are
// then relative to the window, as in llama.cpp's context shift without KV-cache reuse.
//
// # Scoring
//
// [ScoreTokens] measures the negative log-likelihood of a token sequence: the sequence is cut
// into consecutive windows of the context length, each window is run from an empty context
// (one prefill), and the logits at every position are scored against the next token of the
// sequence (the first token of the next window is the target of a window's last position).
// Every token but the first is scored once. For a byte-level model (vocabulary 256, one token
// per byte) [Score.BitsPerToken] is the bits per byte, and [Score.Perplexity] the per-byte
// perplexity. This is the cut of data/text.Windows with the tail window kept.
//
// The package is on the deploy path: it imports only the standard library and package infer.
package textgen
