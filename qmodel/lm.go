package qmodel

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/quant"
)

// Language-model op kinds. Their activations are per token: an activation of shape [D] holds
// one token's vector, and the runtime (infer.LM) runs a batch of tokens (the prompt) or one token
// at a time against its KV cache. Inputs and outputs (tensor indices) per kind:
//
//	Embedding  in: ids int32 [1] (scale 1, zero point 0), table int8/int4 [V,D] (scales per row or
//	           per tensor), optional group scales int32 [V,D/G]                       out: int8 [D]
//	RMSNorm    in: x int8 [D], gain float32 [D]; attribute Eps                          out: int8 [D]
//	Linear     in: x int8 [K], weights int8/int4 [N,K] (per-channel or per-tensor scales), optional
//	           group scales int32 [N,K/G] (int4 only)                                  out: int8 [N]
//	RoPE       in: x int8 [Heads*HeadDim]; attributes Heads, HeadDim, Theta, MaxSeq   out: int8, same shape
//	Attention  in: q int8 [Heads*HeadDim], k, v int8 [KVHeads*HeadDim], k-cache scales float32
//	           [KVHeads], v-cache scales float32 [KVHeads], optional cache range int32 [2] (the
//	           largest |level| of the K and V caches in [1,127], scale 1, zero point 0; without it
//	           127); attributes Heads, KVHeads, HeadDim, MaxSeq
//	           (causal, softmax inside, int8 KV cache of MaxSeq positions)            out: int8 [Heads*HeadDim]
//	SwiGLU     in: gate int8 [F], up int8 [F]                                          out: int8 [F] = silu(gate)*up
//	Hadamard   in: x int8 [N]; attribute Block (a power of two dividing N)             out: int8 [N]
//	LMHead     in: x int8 [D], weights as Linear [V,D]                                 out: int32 [V], scales s_x*s_w[c]
//
// The residual Add is the existing Add op; the logits leave through Dequantize, which accepts the
// int32 output of LMHead. Group scales are integers (the kernels' W4A8 contract, see
// kernels.PackedInt4): the real weight is Scales[row] * groupScale[row][k/G] * q, so the runtime
// stays integer-only; an exporter derives them from float per-group scales s[row][g] as
// Scales[row] = max_g s[row][g] / MaxGroupScale and groupScale = round(s / Scales[row]).
//
// # Integer arithmetic
//
// Every op is exact integer arithmetic per token row, so any two implementations agree bit for
// bit (package infer is the runtime; internal/lmspec a second implementation written from this
// text). M(acc) is quant.MultiplyByQuantizedMultiplier (ties toward +inf, saturating to int32),
// round(a/b) rounds ties away from zero, clamp is to [-128, 127], x' = q - z of the input.
//
//	Embedding  out = clamp(zOut + M_row(w*g)), w the table level, g its integer group scale (1 without),
//	           M_row of sRow/sOut (ConvMultipliers with input scale 1)
//	RMSNorm    epsQ = min(round(eps/sIn^2 * 2^32), 2^62) in float64; ms = floor(sum(x'^2)*2^32/D) + epsQ;
//	           r = max(floor(sqrt(ms)), 1); t = sat32(round(x' * 2^(16+S) / r)), S = RMSNormShift(D);
//	           y = M_i(t) (RMSNormMultiplier of |gain[i]|), negated when gain[i] < 0; out = clamp(zOut + y)
//	Linear     acc = sum_k x'[k]*w[n][k]*g[n][k/G] (int32 by the validation bounds); out = clamp(zOut + M_n(acc)),
//	           M_n of sIn*sW[n]/sOut (ConvMultipliers); LMHead outputs acc itself
//	RoPE       pair (2j, 2j+1) of each head at position p: c, s = round(cos(a)*2^30), round(sin(a)*2^30),
//	           a = p*Theta^(-2j/HeadDim) (float64, Go's math); u = round((x0'c - x1's)/2^15),
//	           v = round((x0's + x1'c)/2^15); out = clamp(zOut + M(u)), clamp(zOut + M(v)) (RoPEMultiplier)
//	Attention  cache (KV head g): kc = clamp(Mk_g(k'), -kMax, kMax), vc = clamp(Mv_g(v'), -vMax, vMax)
//	           (AttentionMultipliers, AttentionCacheMax). Query row at position p, head h, g =
//	           h/(Heads/KVHeads): s_t = sum_d q'[d]*kc[t][d] for t = 0..p; d_t = max s - s_t;
//	           with V = AttentionExpScale(sQ, kCache[g], HeadDim)*2^16 = fr*2^e (math.Frexp), the
//	           Q16 log2 argument is u_t = floor(d_t * round(fr*2^32) / 2^(32-e)) (any d_t >= 1 gives
//	           e_t = 0 when V >= 2^32); e_t = 2^(-u_t/2^16) in Q20: n = floor(u/2^16), j =
//	           floor(u/2^8) mod 256, l = u mod 256, T[i] = round(2^(-i/256)*2^30) (i = 0..256),
//	           v = T[j] + floor(((T[j+1]-T[j])*l + 128)/256), e = round(v/2^(n+10)) (0 for n >= 31);
//	           o[d] = sum_t e_t*vc[t][d]; r = round(o[d]*2^16 / sum_t e_t); out = clamp(zOut + Mo_g(r))
//	SwiGLU     out = clamp(zOut + M(T[gate+128] * up')), T = SiLUTable(gate), M = SwiGLUMultiplier
//	Hadamard   per block of B: y[i] = sum_j (-1)^popcount(i&j) x'[j]; out = clamp(zOut + M(y)) (HadamardMultiplier)
//	Add        a = Ma(x_a' << AddLeftShift), b = Mb(x_b' << AddLeftShift); out = clamp(zOut + Mout(a+b), lo, hi)
//	Dequantize logits: float32(acc) * scale[c] in float32
const (
	OpEmbedding OpKind = 10 + iota
	OpRMSNorm
	OpLinear
	OpRoPE
	OpAttention
	OpSwiGLU
	OpHadamard
	OpLMHead
)

var lmOpNames = [...]string{"Embedding", "RMSNorm", "Linear", "RoPE", "Attention", "SwiGLU", "Hadamard", "LMHead"}

// IsLM reports whether k is a language-model op kind (Embedding ... LMHead).
func (k OpKind) IsLM() bool { return k >= OpEmbedding && k <= OpLMHead }

// LMAttrs are the attributes of the language-model ops; fields that do not apply to a kind must
// be zero. In the file they follow the nine common attributes of an LM op as seven int32 values
// (Heads, KVHeads, HeadDim, MaxSeq, Block, and the float32 bits of Theta and Eps).
type LMAttrs struct {
	Heads   int     // RoPE, Attention: query heads
	KVHeads int     // Attention: key/value heads (divides Heads; grouped-query attention when smaller)
	HeadDim int     // RoPE, Attention: elements per head (even for RoPE)
	MaxSeq  int     // RoPE, Attention: context length (positions 0..MaxSeq-1)
	Block   int     // Hadamard: transform size (a power of two)
	Theta   float32 // RoPE: rotary base (pair p of a head turns by pos*Theta^(-2p/HeadDim))
	Eps     float32 // RMSNorm: epsilon added to the mean square
}

const numLMAttrs = 7

func (a *LMAttrs) encode() [numLMAttrs]int32 {
	return [numLMAttrs]int32{int32(a.Heads), int32(a.KVHeads), int32(a.HeadDim), int32(a.MaxSeq), int32(a.Block),
		int32(math.Float32bits(a.Theta)), int32(math.Float32bits(a.Eps))}
}

func (a *LMAttrs) decode(v [numLMAttrs]int32) {
	a.Heads, a.KVHeads, a.HeadDim, a.MaxSeq, a.Block = int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4])
	a.Theta, a.Eps = math.Float32frombits(uint32(v[5])), math.Float32frombits(uint32(v[6]))
}

// Limits of the language-model ops, enforced by Validate before anything is allocated.
const (
	MaxContext      = 1 << 16 // MaxSeq of RoPE and Attention
	MaxKVCacheBytes = 1 << 30 // KV cache of all Attention ops together (2*MaxSeq*KVHeads*HeadDim each)
	MaxRoPETable    = 1 << 24 // MaxSeq*HeadDim/2 entries of one RoPE op's cos/sin table
	// MaxRoPETables bounds the entries of all distinct RoPE tables of a model together (RoPE ops
	// with equal HeadDim, MaxSeq and Theta share one table in the runtime): without it a file of
	// a few KB with many RoPE ops of different thetas would make the runtime build gigabytes of
	// tables at load.
	MaxRoPETables  = 1 << 26
	MaxHadamard    = 1 << 16 // Hadamard block size
	MaxGroupScale  = 1<<15 - 1
	maxLinearDepth = 1 << 16 // K of Linear/LMHead: (x-z)*w sums of K terms stay inside int32
)

// IsLM reports whether the model is a language model (it has an Embedding op).
func (m *Model) IsLM() bool {
	for i := range m.Ops {
		if m.Ops[i].Kind == OpEmbedding {
			return true
		}
	}
	return false
}

// ContextLength returns the smallest MaxSeq of the model's RoPE and Attention ops (the number of
// positions a session can hold), or 0 when it has none.
func (m *Model) ContextLength() int {
	n := 0
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Kind == OpRoPE || op.Kind == OpAttention {
			if n == 0 || op.LM.MaxSeq < n {
				n = op.LM.MaxSeq
			}
		}
	}
	return n
}

// RoPETableEntries returns the entries (position x pair) of the model's distinct RoPE tables:
// the sum of MaxSeq*HeadDim/2 over RoPE ops with distinct (HeadDim, MaxSeq, Theta).
func (m *Model) RoPETableEntries() int64 {
	type key struct {
		hd, seq int
		theta   uint32
	}
	seen := map[key]bool{}
	var n int64
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Kind != OpRoPE {
			continue
		}
		k := key{op.LM.HeadDim, op.LM.MaxSeq, math.Float32bits(op.LM.Theta)}
		if !seen[k] {
			seen[k] = true
			n += int64(op.LM.MaxSeq) * int64(op.LM.HeadDim/2)
		}
	}
	return n
}

// KVCacheBytes returns the bytes of int8 KV cache that one session needs for the full context:
// sum over Attention ops of 2*MaxSeq*KVHeads*HeadDim.
func (m *Model) KVCacheBytes() int64 {
	var n int64
	for i := range m.Ops {
		if op := &m.Ops[i]; op.Kind == OpAttention {
			n += 2 * int64(op.LM.MaxSeq) * int64(op.LM.KVHeads) * int64(op.LM.HeadDim)
		}
	}
	return n
}

// RMSNormShift returns the fixed-point shift S of RMSNorm over D elements: the normalised value
// (x-z)/rms(x-z), at most sqrt(D) in magnitude, is held as an int32 in units of 2^-S before the
// per-channel gain multiplier |gain[i]|/(sOut*2^S) is applied.
func RMSNormShift(d int) int {
	r := 1
	for r*r < d {
		r++
	}
	b := 0
	for v := r; v > 0; v >>= 1 {
		b++
	}
	return 30 - b
}

// RMSNormMultiplier returns the requantization multiplier of channel i of RMSNorm: |gain|/(sOut*2^S).
func RMSNormMultiplier(gain, outScale float32, d int) (quant.Multiplier, error) {
	return quant.QuantizeMultiplier(math.Abs(float64(gain)) / (float64(outScale) * math.Ldexp(1, RMSNormShift(d))))
}

// RoPEFracBits is the precision of the RoPE cos/sin tables (Q30) and RoPEOutShift the shift applied
// to the rotated int64 sum before requantization (Q15 remains), so the multiplier is sIn/(sOut*2^15).
const (
	RoPEFracBits = 30
	RoPEOutShift = 15
)

// RoPEMultiplier returns the requantization multiplier of RoPE: sIn/(sOut*2^(RoPEFracBits-RoPEOutShift)).
func RoPEMultiplier(inScale, outScale float32) (quant.Multiplier, error) {
	return quant.QuantizeMultiplier(float64(inScale) / (float64(outScale) * math.Ldexp(1, RoPEFracBits-RoPEOutShift)))
}

// AttentionOutBits is the fixed-point precision of the attention average: the probability-weighted
// mean of the cached values (int8 units of the v-cache scale) is held in units of 2^-16.
const AttentionOutBits = 16

// AttentionMultipliers returns, for KV head h, the multipliers that move k and v into the cache
// (sK/kCache[h], sV/vCache[h]) and the output multiplier vCache[h]/(sOut*2^AttentionOutBits).
func AttentionMultipliers(sK, sV, kCache, vCache, sOut float32) (mk, mv, mo quant.Multiplier, err error) {
	if mk, err = quant.QuantizeMultiplier(float64(sK) / float64(kCache)); err != nil {
		return
	}
	if mv, err = quant.QuantizeMultiplier(float64(sV) / float64(vCache)); err != nil {
		return
	}
	mo, err = quant.QuantizeMultiplier(float64(vCache) / (float64(sOut) * math.Ldexp(1, AttentionOutBits)))
	return
}

// SiLUTable returns SwiGLU's table of silu(sGate*(q-zGate)) for q = -128..127 (index q+128) in units
// of tableScale = max|silu| / 32767 (1 if silu is 0 everywhere), rounded half away from zero.
func SiLUTable(gate quant.Params) (table [256]int32, tableScale float64) {
	var v [256]float64
	mx := 0.0
	for i := range v {
		x := float64(gate.Scale) * float64(int32(i-128)-gate.ZeroPoint)
		v[i] = x / (1 + math.Exp(-x))
		mx = math.Max(mx, math.Abs(v[i]))
	}
	tableScale = mx / 32767
	if tableScale == 0 {
		tableScale = 1
	}
	for i := range v {
		table[i] = int32(math.Round(v[i] / tableScale))
	}
	return table, tableScale
}

// SwiGLUMultiplier returns the requantization multiplier of SwiGLU: tableScale*sUp/sOut.
func SwiGLUMultiplier(gate quant.Params, upScale, outScale float32) (quant.Multiplier, error) {
	_, ts := SiLUTable(gate)
	return quant.QuantizeMultiplier(ts * float64(upScale) / float64(outScale))
}

// HadamardMultiplier returns the requantization multiplier of a Hadamard block of size n:
// sIn/(sOut*sqrt(n)) (the transform is orthonormal).
func HadamardMultiplier(inScale, outScale float32, n int) (quant.Multiplier, error) {
	return quant.QuantizeMultiplier(float64(inScale) / (float64(outScale) * math.Sqrt(float64(n))))
}

func lmOpName(k OpKind) (string, bool) {
	if k.IsLM() {
		return lmOpNames[k-OpEmbedding], true
	}
	return "", false
}

// checkLMAttrsZero rejects LM attributes on an op that has none.
func checkLMAttrsZero(op *Op) error {
	if op.LM != (LMAttrs{}) && !op.Kind.IsLM() {
		return fmt.Errorf("language-model attributes %+v set on %v", op.LM, op.Kind)
	}
	return nil
}

// AttentionCacheMax returns the largest |level| the K and V caches of an Attention op hold: the
// values of its optional cache-range input, or MaxCacheLevel for both without it. The model must
// be valid.
func (m *Model) AttentionCacheMax(op *Op) (k, v int32, err error) {
	if len(op.Inputs) < 6 {
		return MaxCacheLevel, MaxCacheLevel, nil
	}
	c, err := m.Tensors[op.Inputs[5]].Int32Values()
	if err != nil || len(c) != 2 {
		return 0, 0, fmt.Errorf("qmodel: %s: cache range %q must hold 2 int32 values", op.Name, m.Tensors[op.Inputs[5]].Name)
	}
	return c[0], c[1], nil
}
