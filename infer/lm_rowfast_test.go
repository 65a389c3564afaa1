package infer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// forEachKernelPath runs f with every kernel path of this build and CPU (portable first), then
// restores the automatic choice.
func forEachKernelPath(t *testing.T, f func(path string)) {
	t.Helper()
	defer func() {
		if err := kernels.SetPath(kernels.Paths()[len(kernels.Paths())-1]); err != nil {
			t.Fatal(err)
		}
	}()
	for _, p := range kernels.Paths() {
		if err := kernels.SetPath(p); err != nil {
			t.Fatal(err)
		}
		f(p)
	}
}

// edgeRow returns a row of n levels for trial: random, all at z, one level away from z, or only
// -128 and 127.
func edgeRow(r *rand.Rand, n int, z int32, trial int) []int8 {
	x := randRow(r, n)
	switch trial % 4 {
	case 0:
		for i := range x {
			x[i] = int8(z)
		}
	case 1:
		for i := range x {
			x[i] = int8(z)
		}
		x[r.IntN(n)] = int8(r.IntN(256) - 128)
	case 2:
		for i := range x {
			x[i] = int8(255*r.IntN(2) - 128)
		}
	}
	return x
}

func sameInt8(t *testing.T, what string, got, want []int8) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: element %d = %d, plain op %d", what, i, got[i], want[i])
		}
	}
}

// TestLMRowFastMatchesPlain: every op's fast form (lm_rowfast.go) equals its plain form of
// lm_ops.go bit for bit on every kernel path, on random LMs with nonzero zero points (int8,
// int4 with groups, Hadamard), with random and extreme rows: all 65536 input pairs of SwiGLU and
// Add, every vocabulary row of the embedding, every RoPE position, and attention at every
// position over random caches.
func TestLMRowFastMatchesPlain(t *testing.T) {
	seen := map[qmodel.OpKind]bool{}
	for ci, c := range []struct{ bits, group int }{{8, 0}, {4, 16}} {
		r := rand.New(rand.NewPCG(41, uint64(ci)))
		lm := loadRandomLMZeroPoints(t, smallLMConfig(c.bits, c.group), 15, r)
		s := lm.NewSession()
		forEachKernelPath(t, func(path string) {
			for si := range lm.steps {
				st := &lm.steps[si]
				if st.fast == nil {
					continue
				}
				seen[st.kind] = true
				what := path + " " + st.name
				got, want := make([]int8, st.outN), make([]int8, st.outN)
				switch st.kind {
				case qmodel.OpEmbedding:
					for tok := 0; tok < lm.vocab; tok++ {
						embeddingRowFast(got, st, tok, s.scratch)
						embeddingRow(want, st, tok)
						sameInt8(t, what, got, want)
					}
				case qmodel.OpRMSNorm:
					for trial := 0; trial < 400; trial++ {
						x := edgeRow(r, st.inN, st.zIn, trial)
						rmsNormRowFast(got, x, st)
						rmsNormRow(want, x, st)
						sameInt8(t, what, got, want)
					}
				case qmodel.OpRoPE:
					for pos := 0; pos < lm.ctx; pos++ {
						x := edgeRow(r, st.inN, st.zIn, pos)
						ropeRowFast(got, x, st, pos, s.scratch)
						ropeRow(want, x, st, pos)
						sameInt8(t, what, got, want)
					}
				case qmodel.OpSwiGLU, qmodel.OpAdd:
					n := st.inN
					a, b := make([]int8, 65536+n), make([]int8, 65536+n)
					for i := range a {
						a[i], b[i] = int8(i>>8), int8(i)
					}
					for o := 0; o < 65536; o += n {
						x, y := a[o:o+n], b[o:o+n]
						if st.kind == qmodel.OpAdd {
							lmAddFast(got, x, y, st, s.scratch)
							lmAdd(want, x, y, st)
						} else {
							swigluRowFast(got, x, y, st, s.scratch)
							swigluRow(want, x, y, st)
						}
						sameInt8(t, what, got, want)
					}
				case qmodel.OpHadamard:
					for trial := 0; trial < 200; trial++ {
						x := edgeRow(r, st.inN, st.zIn, trial)
						hadamardRowFast(got, x, st, s.scratch)
						hadamardRow(want, x, st, s.scratch)
						sameInt8(t, what, got, want)
					}
				case qmodel.OpAttention:
					a := st.att
					kc, vc := make([]int8, a.kvHeads*a.maxSeq*a.hd), make([]int8, a.kvHeads*a.maxSeq*a.hd)
					for i := range kc {
						kc[i], vc[i] = int8(r.IntN(255)-127), int8(r.IntN(255)-127)
						if i%5 == 0 {
							kc[i], vc[i] = 127*int8(1-2*r.IntN(2)), -127
						}
					}
					out32 := make([]int32, a.hd)
					for pos := 0; pos < a.maxSeq; pos++ {
						q := edgeRow(r, st.inN, a.zQ, pos)
						attentionRowFast(got, q, st, kc, vc, pos, s.scratch, s.acc64, s.q16, out32)
						attentionRow(want, q, st, kc, vc, pos, s.scratch, s.acc64, s.q16)
						sameInt8(t, what, got, want)
					}
				default:
					t.Fatalf("%s: fast form of %v not checked", what, st.kind)
				}
			}
		})
	}
	for _, k := range []qmodel.OpKind{qmodel.OpEmbedding, qmodel.OpRMSNorm, qmodel.OpRoPE, qmodel.OpSwiGLU,
		qmodel.OpAdd, qmodel.OpHadamard, qmodel.OpAttention} {
		if !seen[k] {
			t.Errorf("no fast %v checked", k)
		}
	}
}

// TestAttentionExpMatchesPlain: the softmax stage equals its portable form on every path for
// row lengths around the 8-lane steps, scores at the int32 limits and scales from 0 to the
// largest mantissa and shift (products of 64 bits, shifts past 64).
func TestAttentionExpMatchesPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	scales := []expScale{
		{}, {mant: 1, sh: 0}, {mant: 1<<32 - 1, sh: 0}, {mant: 1<<32 - 1, sh: 63}, {mant: 1 << 31, sh: 64},
		{mant: 1 << 31, sh: 130}, {big: true}, newExpScale(1e-9), newExpScale(0.01), newExpScale(1), newExpScale(60000),
	}
	for trial := 0; trial < 3000; trial++ {
		n := 1 + r.IntN(40)
		if trial%5 == 0 {
			n = 1 + r.IntN(17)
		}
		sc := make([]int32, n)
		for i := range sc {
			switch trial % 4 {
			case 0:
				sc[i] = int32(r.Uint32())
			case 1:
				sc[i] = []int32{math.MinInt32, math.MaxInt32, 0, -1}[r.IntN(4)]
			default:
				sc[i] = int32(r.IntN(20001) - 10000)
			}
		}
		ec := scales[trial%len(scales)]
		if trial%3 == 0 {
			ec = expScale{mant: 1<<31 + r.Uint64N(1<<31), sh: uint(r.IntN(70))}
		}
		want := make([]int32, n)
		wsum := attentionExpPortable(want, sc, ec)
		forEachKernelPath(t, func(path string) {
			got := make([]int32, n+1)
			got[n] = 12345
			sum := attentionExp(got[:n], sc, ec)
			if sum != wsum || got[n] != 12345 {
				t.Fatalf("%s: n=%d %+v: sum %d, plain %d (guard %d)", path, n, ec, sum, wsum, got[n])
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: n=%d %+v score %d (of %v): %d, plain %d", path, n, ec, sc[i], sc, got[i], want[i])
				}
			}
		})
	}
}

// TestAttentionExpEveryTableEntry: the softmax stage on scores 0, -1, ..., -(3<<16) with the
// scale u = d (mant 1, shift 0) runs every table entry j and every interpolation step l of the
// first three octaves (and the zero beyond), against the plain form, on every kernel path.
func TestAttentionExpEveryTableEntry(t *testing.T) {
	sc := make([]int32, 3<<16+5)
	for i := range sc {
		sc[i] = -int32(i)
	}
	ec := expScale{mant: 1, sh: 0}
	want := make([]int32, len(sc))
	wsum := attentionExpPortable(want, sc, ec)
	forEachKernelPath(t, func(path string) {
		got := make([]int32, len(sc))
		if sum := attentionExp(got, sc, ec); sum != wsum {
			t.Fatalf("%s: sum %d, plain %d", path, sum, wsum)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: d=%d: %d, plain %d", path, i, got[i], want[i])
			}
		}
	})
}

// TestRoPEFastTies: RoPE's fast form equals the plain op on tables made to hit the rounding
// ties of the Q15 step (cos, sin = +-2^14, 3*2^14: odd levels give v = k*2^15 + 2^14) and the
// table limits +-2^30, with a multiplier of 1, for every level pair, on every kernel path.
func TestRoPEFastTies(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	lm := loadRandomLMZeroPoints(t, smallLMConfig(8, 0), 16, r)
	s := lm.NewSession()
	for si := range lm.steps {
		if lm.steps[si].kind != qmodel.OpRoPE || lm.steps[si].fast == nil {
			continue
		}
		st := lm.steps[si] // a copy with its own tables
		p := &st.rope
		p.cos, p.sin = make([]int32, len(p.cos)), make([]int32, len(p.sin))
		vals := []int32{1 << 14, -(1 << 14), 3 << 14, -(3 << 14), 1 << 30, -(1 << 30), 0, 1, -1}
		for i := range p.cos {
			p.cos[i], p.sin[i] = vals[r.IntN(len(vals))], vals[r.IntN(len(vals))]
		}
		// Multiplier 1: the Q15 values themselves are the output levels, so that a tie rounded
		// the wrong way shows.
		mu := quant.Multiplier{M0: 1 << 30, Shift: 1}
		st.mult = mu.Prepare()
		f := *st.fast
		var err error
		if f.rq, err = kernels.NewRowRequant(mu, st.zOut, -128, 127); err != nil {
			t.Fatal(err)
		}
		f.c2, f.s2 = ropeInterleaved(p)
		st.fast = &f
		forEachKernelPath(t, func(path string) {
			got, want := make([]int8, st.outN), make([]int8, st.outN)
			x := make([]int8, st.inN)
			for pos := 0; pos < lm.ctx; pos++ {
				for v := 0; v < 256; v++ {
					for i := range x {
						x[i] = int8(v + i*37)
					}
					ropeRowFast(got, x, &st, pos, s.scratch)
					ropeRow(want, x, &st, pos)
					sameInt8(t, path+" "+st.name, got, want)
				}
			}
		})
		return
	}
	t.Fatal("no RoPE step")
}
