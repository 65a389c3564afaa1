package infer

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// The fast forms of the LM ops are checked bit for bit against the plain forms the runtime
// started with (kept here as references).

func roundShift64Ref(x int64, s uint) int64 {
	h := int64(1) << (s - 1)
	if x >= 0 {
		return (x + h) >> s
	}
	return -((-x + h) >> s)
}

func roundDiv64Ref(num, den int64) int64 {
	if num >= 0 {
		return (num + den/2) / den
	}
	return -((-num + den/2) / den)
}

func rmsNormRowRef(dst, src []int8, st *lmStep) {
	d := st.inN
	var ss uint64
	for _, q := range src[:d] {
		x := int64(q) - int64(st.zIn)
		ss += uint64(x * x)
	}
	quo, _ := bits.Div64(ss>>32, ss<<32, uint64(d))
	r := int64(isqrt64(quo + st.rms.epsQ))
	if r == 0 {
		r = 1
	}
	sh := uint(16 + st.rms.shift)
	for i, q := range src[:d] {
		x := int64(q) - int64(st.zIn)
		t := sat32(roundDiv64Ref(x<<sh, r))
		y := int64(st.perRow[i].Apply(t))
		if st.sign[i] < 0 {
			y = -y
		}
		v := y + int64(st.zOut)
		dst[i] = int8(max(-128, min(127, v)))
	}
}

func TestRoundingHelpers(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	edges := []int64{0, 1, -1, 2, -2, 3, -3, 1 << 14, -(1 << 14), 1<<15 - 1, -(1<<15 - 1), 1 << 40, -(1 << 40), 1<<62 - 1, -(1<<62 - 1)}
	for i := 0; i < 300000; i++ {
		var x int64
		if i < len(edges) {
			x = edges[i]
		} else {
			x = r.Int64N(1<<(1+r.IntN(62))) * int64(2*r.IntN(2)-1)
		}
		for _, s := range []uint{1, 2, 15, 16, 30} {
			if got, want := roundShift64(x, s), roundShift64Ref(x, s); got != want {
				t.Fatalf("roundShift64(%d, %d) = %d, want %d", x, s, got, want)
			}
		}
		den := 1 + r.Int64N(int64(1)<<(1+r.IntN(40)))
		if i%7 == 0 {
			den = 1 + r.Int64N(4)
		}
		want := roundDiv64Ref(x, den)
		if got := roundDiv64(x, den); got != want {
			t.Fatalf("roundDiv64(%d, %d) = %d, want %d", x, den, got, want)
		}
		if got := newDivider(uint64(den)).roundDiv(x); got != want {
			t.Fatalf("divider(%d).roundDiv(%d) = %d, want %d", den, x, got, want)
		}
		u := uint64(r.Int64N(math.MaxInt64))
		if got := newDivider(uint64(den)).div(u); got != u/uint64(den) {
			t.Fatalf("divider(%d).div(%d) = %d, want %d", den, u, got, u/uint64(den))
		}
	}
}

// TestLMFastOpsMatchPlain: the table-driven residual Add (all 65536 input pairs), cache write
// and the division-free RMSNorm equal their plain forms on a random LM with nonzero zero points.
func TestLMFastOpsMatchPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	lm := loadRandomLMZeroPoints(t, smallLMConfig(8, 0), 12, r)
	seen := map[qmodel.OpKind]bool{}
	for si := range lm.steps {
		st := &lm.steps[si]
		switch st.kind {
		case qmodel.OpAdd:
			a, b := make([]int8, 65536), make([]int8, 65536)
			for i := range a {
				a[i], b[i] = int8(i>>8), int8(i)
			}
			got, want := make([]int8, len(a)), make([]int8, len(a))
			lmAdd(got, a, b, st)
			add(want, a, b, &st.add)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s(%d, %d) = %d, plain %d", st.name, a[i], b[i], got[i], want[i])
				}
			}
		case qmodel.OpAttention:
			a := st.att
			n := a.kvHeads * a.hd
			k, v := make([]int8, n), make([]int8, n)
			for q := -128; q < 128; q++ {
				for i := range k {
					k[i], v[i] = int8(q), int8(-1-q)
				}
				kc, vc := make([]int8, a.kvHeads*a.maxSeq*a.hd), make([]int8, a.kvHeads*a.maxSeq*a.hd)
				kr, vr := make([]int8, len(kc)), make([]int8, len(vc))
				cacheWrite(kc, vc, k, v, a, q&7)
				cacheWriteRef(kr, vr, k, v, a, q&7)
				for i := range kc {
					if kc[i] != kr[i] || vc[i] != vr[i] {
						t.Fatalf("%s: cache write of %d differs at %d", st.name, q, i)
					}
				}
			}
		case qmodel.OpRMSNorm:
			for trial := 0; trial < 2000; trial++ {
				x := randRow(r, st.inN)
				switch trial % 4 {
				case 0: // all at the zero point: rms 0 (eps only)
					for i := range x {
						x[i] = int8(st.zIn)
					}
				case 1: // one element away from the zero point
					for i := range x {
						x[i] = int8(st.zIn)
					}
					x[r.IntN(len(x))] = int8(r.IntN(256) - 128)
				case 2:
					for i := range x {
						x[i] = int8(255*r.IntN(2) - 128)
					}
				}
				got, want := make([]int8, st.outN), make([]int8, st.outN)
				rmsNormRow(got, x, st)
				rmsNormRowRef(want, x, st)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s trial %d: element %d = %d, plain %d", st.name, trial, i, got[i], want[i])
					}
				}
			}
		default:
			continue
		}
		seen[st.kind] = true
	}
	if len(seen) != 3 {
		t.Fatalf("ops checked: %v", seen)
	}
}

// loadRandomLMZeroPoints is loadRandomLM with the zero point of every int8 activation moved to a
// random level in [-20, 20] (RandomLM calibrates symmetric ranges: zero points 0).
func loadRandomLMZeroPoints(t testing.TB, c lmref.Config, seed uint64, r *rand.Rand) *LM {
	t.Helper()
	m, err := lmref.RandomLM(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Tensors {
		tn := &m.Tensors[i]
		if !tn.IsConst() && tn.DType == qmodel.Int8 && tn.Quant != nil {
			tn.Quant.ZeroPoints[0] = int32(r.IntN(41) - 20)
		}
	}
	lm, err := LoadLM(m)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// TestLMDecodeSameOnEveryPath: prefill and decode give bit-identical logits on every kernel path
// (portable Go first; SIMD GEMV, int4 GEMV and attention where this CPU and build have them), at
// W8A8 and W4A8 g32, with head sizes that take the SIMD attention and one that does not.
func TestLMDecodeSameOnEveryPath(t *testing.T) {
	defer func() {
		if err := kernels.SetPath(kernels.Paths()[len(kernels.Paths())-1]); err != nil {
			t.Fatal(err)
		}
	}()
	for _, c := range []lmref.Config{
		{Vocab: 64, Dim: 64, Layers: 2, Heads: 4, Hidden: 96, Ctx: 40, Bits: 8},
		{Vocab: 64, Dim: 96, Layers: 1, Heads: 2, KVHeads: 1, Hidden: 64, Ctx: 40, Bits: 4, Group: 32},
		{Vocab: 32, Dim: 24, Layers: 1, Heads: 4, Hidden: 32, Ctx: 20, Bits: 8},
	} {
		r := rand.New(rand.NewPCG(5, 5))
		lm := loadRandomLMZeroPoints(t, c, 13, r)
		toks := make([]int, c.Ctx)
		for i := range toks {
			toks[i] = r.IntN(c.Vocab)
		}
		var want []float32
		for _, path := range kernels.Paths() {
			if err := kernels.SetPath(path); err != nil {
				t.Fatal(err)
			}
			s := lm.NewSession()
			var got []float32
			if err := s.PrefillEach(toks[:5], func(_ int, l []float32) { got = append(got, l...) }); err != nil {
				t.Fatal(err)
			}
			for _, tk := range toks[5:] {
				l, err := s.Decode(tk)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, l...)
			}
			if want == nil {
				want = got
				continue
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%+v: path %s logit %d = %g, %s gives %g", c, path, i, got[i], kernels.Paths()[0], want[i])
				}
			}
		}
	}
}

// TestLMThreadsSameLogits: a session whose large linear layers split their channels over threads
// gives the logits of a one-thread session, also with two such sessions decoding concurrently on
// the same LM (run it with -race).
func TestLMThreadsSameLogits(t *testing.T) {
	for _, c := range []lmref.Config{
		{Vocab: 64, Dim: 128, Layers: 1, Heads: 4, Hidden: 512, Ctx: 10, Bits: 8}, // 512x128 = 2^16 MACs
		{Vocab: 64, Dim: 128, Layers: 1, Heads: 4, Hidden: 512, Ctx: 10, Bits: 4, Group: 32},
	} {
		lm, _ := loadRandomLM(t, c, 14)
		r := rand.New(rand.NewPCG(1, 9))
		toks := make([]int, c.Ctx)
		for i := range toks {
			toks[i] = r.IntN(c.Vocab)
		}
		decode := func(threads int) ([]float32, error) {
			s := lm.NewSessionWith(LMSessionOptions{Threads: threads})
			var out []float32
			for _, tk := range toks {
				l, err := s.Decode(tk)
				if err != nil {
					return nil, err
				}
				out = append(out, l...)
			}
			return out, nil
		}
		want, err := decode(1)
		if err != nil {
			t.Fatal(err)
		}
		results := make([][]float32, 2)
		errs := make([]error, 2)
		done := make(chan int)
		for i := range results {
			go func() {
				results[i], errs[i] = decode(2)
				done <- i
			}()
		}
		<-done
		<-done
		for i, got := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			for j := range want {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("%+v: session %d with 2 threads: logit %d = %g, one thread %g", c, i, j, got[j], want[j])
				}
			}
		}
	}
}
