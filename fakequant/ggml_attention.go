package fakequant

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/gguf"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GGMLAttentionConfig describes the attention GGMLAttention reproduces.
type GGMLAttentionConfig struct {
	Batch, Seq, Heads int     // sequences, positions per sequence (each starts at position 0), heads
	RoPEBase          float64 // RoPE base (llama.rope.freq_base, stored as float32 in the GGUF file)
	// KVF16 selects llama.cpp's F16 KV cache (its default context setting): keys and values are
	// stored in half precision, and the queries and the probabilities are converted to half
	// precision for the products with them. The default is an F32 cache.
	KVF16 bool
}

// GGMLAttention returns ref, graph.CausalAttention's float output [B*T, H*hd] for the projected
// queries, keys and values q, k, v [B*T, H*hd], with its value computed as llama.cpp's x86 CPU
// backend (AVX-512 build, flash attention off) computes it when it evaluates each sequence as one
// batch, and ref's gradient. For each head, in float32:
//
//   - RoPE (ggml_rope_ext, LLAMA_ROPE_TYPE_NORM, adjacent pairs): the angles come from ggml's
//     recurrence theta_0 = float32(pos), theta_{i+1} = theta_i * powf(base, -2/hd), each passed
//     to glibc's sincosf (glibcSincosf reproduces it bit for bit); a pair (x0, x1) becomes
//     (fma(x0, cos, -(x1*sin)), fma(x0, sin, x1*cos)), the contraction GCC compiled.
//   - Scores K·q: with an F32 cache, ggml_vec_dot_f32 (four 16-lane fma accumulators over runs
//     of 64, summed lane-wise then as a tree, then the rest added one rounded product at a time
//     and the last hd%8 by fma); with an F16 cache, llamafile's tinyBLAS on half precision
//     values (one fma per lane of 16, then the tree sum of _mm512_reduce_add_ps).
//   - Softmax (ggml_compute_forward_soft_max_f32): scores times float32(1/sqrtf(hd)), the
//     causal mask, the row max subtracted, exp by ggml_v_expf on runs of 16 whose tree sums are
//     added in float64, then every value times float32(1/sum).
//   - Probabilities times V: tinyBLAS over the cache positions (16 fma lanes, then the tree
//     sum), or, when hd is not a multiple of 4, ggml_vec_dot_f32 over llama.cpp's padded cache
//     length.
//
// With these, every attention output equals llama.cpp's float32 value, so the Q8_0 rounding of
// the output projection's input sees what llama.cpp sees. The F16 cache needs hd to be a
// multiple of 16 (llama.cpp sums the scores of other head sizes with ggml_vec_dot_f16, which is
// not modelled). Decoding one token at a time, llama.cpp computes the scores and the products
// with V by ggml_vec_dot_f32 instead, which may differ in the last bit.
func GGMLAttention(ref, q, k, v *G.Node, c GGMLAttentionConfig) (*G.Node, error) {
	s := q.Shape()
	if s.Dims() != 2 || !k.Shape().Eq(s) || !v.Shape().Eq(s) || !ref.Shape().Eq(s) {
		return nil, fmt.Errorf("fakequant: GGMLAttention needs q, k, v and a reference of one shape [B*T, H*hd], got %v, %v, %v, %v", s, k.Shape(), v.Shape(), ref.Shape())
	}
	if c.Batch < 1 || c.Seq < 1 || c.Heads < 1 || s[0] != c.Batch*c.Seq || s[1]%c.Heads != 0 {
		return nil, fmt.Errorf("fakequant: GGMLAttention: shape %v does not fit batch %d, seq %d, heads %d", s, c.Batch, c.Seq, c.Heads)
	}
	hd := s[1] / c.Heads
	if hd%2 != 0 || c.RoPEBase <= 0 {
		return nil, fmt.Errorf("fakequant: GGMLAttention needs RoPE (base %v) on an even head size (%d)", c.RoPEBase, hd)
	}
	if c.KVF16 && hd%16 != 0 {
		return nil, fmt.Errorf("fakequant: GGMLAttention: llama.cpp's F16 KV cache is modelled for head sizes that are multiples of 16, got %d", hd)
	}
	return ggmlSubstitute(attentionKernel{c: c, hd: hd}, ref, q, k, v)
}

type attentionKernel struct {
	c  GGMLAttentionConfig
	hd int
}

func (k attentionKernel) name() string {
	return fmt.Sprintf("Attention{b=%d t=%d h=%d hd=%d base=%g f16=%v}", k.c.Batch, k.c.Seq, k.c.Heads, k.hd, float32(k.c.RoPEBase), k.c.KVF16)
}

func (k attentionKernel) run(in [][]float32, _ []tensor.Shape, out []float32) error {
	B, T, H, hd := k.c.Batch, k.c.Seq, k.c.Heads, k.hd
	D := H * hd
	q, kk, v := in[0], in[1], in[2]
	if len(q) != B*T*D || len(kk) != len(q) || len(v) != len(q) || len(out) != len(q) {
		return fmt.Errorf("inputs of %d, %d, %d values for [%d, %d]", len(q), len(kk), len(v), B*T, D)
	}
	cos, sin := ggmlRoPECache(T, hd, float32(k.c.RoPEBase))
	// llama.cpp's cache view has n_kv = a multiple of 256 positions; the masked ones add zeros,
	// so only the position -> lane mapping matters, which n_kv does not change.
	nkv := (T + 255) / 256 * 256
	round := func(x float32) float32 { return x }
	if k.c.KVF16 {
		round = gguf.RoundF16
	}
	keys := make([]float32, T*hd)
	vt := make([]float32, hd*nkv) // V transposed, as llama.cpp's cache stores it without flash attention
	qr := make([]float32, hd)
	kq := make([]float32, T)
	p := make([]float32, nkv)
	scale := 1 / float32(math.Sqrt(float64(hd)))
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			at := func(x []float32, t int) []float32 { return x[(b*T+t)*D+h*hd : (b*T+t)*D+(h+1)*hd] }
			for t := 0; t < T; t++ {
				kr := keys[t*hd : (t+1)*hd]
				ggmlRoPE(at(kk, t), kr, cos[t*hd/2:], sin[t*hd/2:])
				for d, x := range at(v, t) {
					kr[d] = round(kr[d])
					vt[d*nkv+t] = round(x)
				}
			}
			for t := 0; t < T; t++ {
				ggmlRoPE(at(q, t), qr, cos[t*hd/2:], sin[t*hd/2:])
				for d := range qr {
					qr[d] = round(qr[d])
				}
				for s := 0; s <= t; s++ {
					if k.c.KVF16 {
						kq[s] = ggmlLaneDot16(keys[s*hd:(s+1)*hd], qr)
					} else {
						kq[s] = ggmlVecDotF32(keys[s*hd:(s+1)*hd], qr)
					}
				}
				ggmlSoftMax(kq[:t+1], p, scale)
				for s := 0; s <= t; s++ {
					p[s] = round(p[s])
				}
				o := at(out, t)
				for d := range o {
					if hd%4 == 0 {
						o[d] = ggmlLaneDot16(vt[d*nkv:d*nkv+t+1], p[:t+1])
					} else {
						o[d] = ggmlVecDotF32(vt[d*nkv:(d+1)*nkv], p)
					}
				}
				clear(p[:t+1])
			}
		}
	}
	return nil
}

// ggmlRoPECache returns ggml_rope_cache_init's cos and sin tables for positions 0..seq-1, row-major
// [seq][hd/2].
func ggmlRoPECache(seq, hd int, base float32) (cos, sin []float32) {
	half := hd / 2
	cos, sin = make([]float32, seq*half), make([]float32, seq*half)
	scale := glibcPowf(base, -2/float32(hd))
	for t := 0; t < seq; t++ {
		theta := float32(t)
		for i := 0; i < half; i++ {
			sin[t*half+i], cos[t*half+i] = glibcSincosf(theta)
			theta *= scale
		}
	}
	return cos, sin
}

// ggmlRoPE rotates the adjacent pairs of x into y with the angles' cos and sin.
func ggmlRoPE(x, y, cos, sin []float32) {
	for i := 0; i < len(x)/2; i++ {
		x0, x1, c, s := x[2*i], x[2*i+1], cos[i], sin[i]
		y[2*i] = fma32(x0, c, -float32(x1*s))
		y[2*i+1] = fma32(x0, s, float32(x1*c))
	}
}

// ggmlReduce16 is _mm512_reduce_add_ps as GCC expands it: halves added lane-wise down to four
// values, then (0+2) + (1+3).
func ggmlReduce16(a *[16]float32) float32 {
	var t [8]float32
	for i := range t {
		t[i] = a[i] + a[i+8]
	}
	var u [4]float32
	for i := range u {
		u[i] = t[i] + t[i+4]
	}
	return (u[0] + u[2]) + (u[1] + u[3])
}

// ggmlLaneDot16 is one output of llamafile's tinyBLAS (AVX-512): lane l%16 accumulates
// x[l]*y[l] by fma, in order, then the lanes are summed by ggmlReduce16.
func ggmlLaneDot16(x, y []float32) float32 {
	var acc [16]float32
	for l := range x {
		acc[l%16] = fma32(x[l], y[l], acc[l%16])
	}
	return ggmlReduce16(&acc)
}

// ggmlVecDotF32 is ggml_vec_dot_f32 of the AVX-512 build (GGML_F32_STEP 64): four accumulators
// of 16 lanes over the first n&^63 values, summed ((0+2)+(1+3)) lane-wise and by
// ggmlReduce16; then the rest in order, as GCC compiled the leftover loop: runs of 16 and 8
// products rounded to float32 and added one at a time, the last n%8 by fma.
func ggmlVecDotF32(x, y []float32) float32 {
	n := len(x)
	np := n &^ 63
	var acc [4][16]float32
	for i := 0; i < np; i += 64 {
		for j := range acc {
			for l := range acc[j] {
				acc[j][l] = fma32(x[i+16*j+l], y[i+16*j+l], acc[j][l])
			}
		}
	}
	var a [16]float32
	for l := range a {
		a[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
	}
	sum := ggmlReduce16(&a)
	i := np
	for ; i < np+(n-np)&^7; i++ {
		sum += float32(x[i] * y[i])
	}
	for ; i < n; i++ {
		sum = fma32(x[i], y[i], sum)
	}
	return sum
}

// ggmlSoftMax writes to p[:len(kq)] llama.cpp's softmax of the row kq*scale
// (ggml_compute_forward_soft_max_f32; the causal mask has already cut the row to the visible
// positions, the masked ones adding exact zeros).
func ggmlSoftMax(kq, p []float32, scale float32) {
	mx := float32(math.Inf(-1))
	for i, x := range kq {
		p[i] = x * scale
		mx = max(mx, p[i])
	}
	inv := float32(1 / ggmlSoftMaxExp(p[:len(kq)], mx))
	for i := range kq {
		p[i] *= inv
	}
}

// ggmlSoftMaxExp is ggml_vec_soft_max_f32 of the AVX-512 build on a row whose length llama.cpp
// pads to a multiple of 16 with masked (-inf) values: w[i] = exp(w[i] - mx) by ggml_v_expf, in
// place, and the float64 sum of the runs of 16, each summed by ggmlReduce16.
func ggmlSoftMaxExp(w []float32, mx float32) float64 {
	var sum float64
	for b := 0; b < len(w); b += 16 {
		var blk [16]float32
		for i := b; i < min(b+16, len(w)); i++ {
			w[i] = ggmlExpf(w[i] - mx)
			blk[i-b] = w[i]
		}
		sum += float64(ggmlReduce16(&blk))
	}
	return sum
}
