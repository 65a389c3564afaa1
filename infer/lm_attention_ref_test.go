package infer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/quant"
)

// attentionRowRef is the plain form of attentionRow (the one the runtime started with): causal attention of one query row at position pos over cache positions
// 0..pos (already written). For query head h and its KV head g: scores s_t = sum q'*k (int32),
// e_t = 2^(-(max-s_t)*c) in Q20 (c = sQ*sK[g]/(sqrt(hd)*ln2)), o = sum e_t*v_t (int64),
// r = round(o*2^16/sum e_t) and out = clamp(zOut + round(r*sV[g]/(sOut*2^16))).
// Error against float softmax attention over the same int8 cache: exponentials within 2^-19
// absolute, the average within 2^-17 of a cache unit; at most 0.5 LSB + sV/sOut*(2^-12) in all.
func attentionRowRef(dst, q []int8, st *lmStep, kc, vc []int8, pos int, scratch []int32) {
	a := st.att
	hd, ms := a.hd, a.maxSeq
	group := a.heads / a.kvHeads
	n := pos + 1
	scores := scratch[:n]
	e64 := scratch[n : 2*n] // exponentials fit int32 (<= 2^20)
	qq := scratch[2*n : 2*n+hd]
	for h := 0; h < a.heads; h++ {
		g := h / group
		for d := 0; d < hd; d++ {
			qq[d] = int32(q[h*hd+d]) - a.zQ
		}
		kh := kc[g*ms*hd : (g*ms+n)*hd]
		mx := int32(math.MinInt32)
		for t := 0; t < n; t++ {
			kr := kh[t*hd : (t+1)*hd]
			var s int32
			for d, kv := range kr {
				s += qq[d] * int32(kv)
			}
			scores[t] = s
			mx = max(mx, s)
		}
		var sum int64
		for t := 0; t < n; t++ {
			e := exp2NegQ16(a.expC[g].apply(uint64(int64(mx) - int64(scores[t]))))
			e64[t] = int32(e)
			sum += e
		}
		vh := vc[g*ms*hd : (g*ms+n)*hd]
		y := dst[h*hd : (h+1)*hd]
		for d := 0; d < hd; d++ {
			var o int64
			for t := 0; t < n; t++ {
				o += int64(e64[t]) * int64(vh[t*hd+d])
			}
			r := roundDiv64(o<<16, sum)
			y[d] = out8(a.mo[g], int32(r), st.zOut)
		}
	}
}

// TestAttentionRowMatchesPlain: the cache-order attention equals the plain form bit for bit, on
// head sizes that are and are not multiples of 4, grouped KV heads, every position, and caches
// and queries at the int8 extremes (where most exponentials underflow to 0 and are skipped).
func TestAttentionRowMatchesPlain(t *testing.T) {
	for _, c := range []lmref.Config{
		{Vocab: 16, Dim: 24, Layers: 1, Heads: 4, KVHeads: 2, Hidden: 16, Ctx: 40, Bits: 8},
		{Vocab: 16, Dim: 64, Layers: 1, Heads: 2, Hidden: 16, Ctx: 33, Bits: 8},
	} {
		r := rand.New(rand.NewPCG(7, 8))
		lm := loadRandomLMZeroPoints(t, c, 11, r)
		for si := range lm.steps {
			st := &lm.steps[si]
			a := st.att
			if a == nil {
				continue
			}
			scratch := make([]int32, lm.scratchN)
			for trial := 0; trial < 3*a.maxSeq; trial++ {
				kc := make([]int8, a.kvHeads*a.maxSeq*a.hd)
				vc := make([]int8, len(kc))
				extreme := trial%3 == 0
				for i := range kc {
					kc[i], vc[i] = int8(r.IntN(255)-127), int8(r.IntN(255)-127)
					if extreme {
						kc[i] = int8(127 * (2*r.IntN(2) - 1))
					}
				}
				q := randRow(r, st.inN)
				if extreme {
					for i := range q {
						q[i] = int8(255*r.IntN(2) - 128)
					}
				}
				pos := trial % a.maxSeq
				got, want := make([]int8, st.outN), make([]int8, st.outN)
				attentionRow(got, q, st, kc, vc, pos, scratch, make([]int64, a.hd), make([]int16, a.hd))
				attentionRowRef(want, q, st, kc, vc, pos, scratch)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%+v position %d: output %d = %d, plain form %d", c, pos, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// cacheWriteRef is the per-element form of cacheWrite: it stores k' and v' of one row at position pos, requantized to the per-head symmetric
// int8 cache scales (clamped to [-127,127]).
func cacheWriteRef(kc, vc, k, v []int8, a *attentionParams, pos int) {
	hd, ms := a.hd, a.maxSeq
	for g := 0; g < a.kvHeads; g++ {
		kd := kc[(g*ms+pos)*hd : (g*ms+pos+1)*hd]
		vd := vc[(g*ms+pos)*hd : (g*ms+pos+1)*hd]
		for d := 0; d < hd; d++ {
			kd[d] = int8(quant.Clamp(a.mk[g].Apply(int32(k[g*hd+d])-a.zK), -127, 127))
			vd[d] = int8(quant.Clamp(a.mv[g].Apply(int32(v[g*hd+d])-a.zV), -127, 127))
		}
	}
}
