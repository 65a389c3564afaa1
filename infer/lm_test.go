package infer

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qatgo/qatgo/internal/lmref"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

func smallLMConfig(bits, group int) lmref.Config {
	return lmref.Config{Vocab: 64, Dim: 32, Layers: 2, Heads: 4, KVHeads: 2, Hidden: 64, Ctx: 24, Bits: bits, Group: group, Hadamard: true}
}

func loadRandomLM(t testing.TB, c lmref.Config, seed uint64) (*LM, *qmodel.Model) {
	t.Helper()
	m, err := lmref.RandomLM(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := LoadLM(m)
	if err != nil {
		t.Fatal(err)
	}
	return lm, m
}

func scaleZero(m *qmodel.Model, t int) (float64, int32) {
	q := m.Tensors[t].Quant
	return float64(q.Scales[0]), q.ZeroPoints[0]
}

func quantRef(y, s float64, z int32) int32 {
	return int32(max(-128, min(127, math.Round(y/s)+float64(z))))
}

func randRow(r *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(r.IntN(256) - 128)
	}
	return v
}

func checkLSB(t *testing.T, what string, got []int8, want []int32, lsb int) {
	t.Helper()
	for i := range got {
		if d := int(got[i]) - int(want[i]); d > lsb || d < -lsb {
			t.Fatalf("%s: element %d = %d, float math gives %d", what, i, got[i], want[i])
		}
	}
}

// TestLMOpsAgainstFloat checks each integer non-linear op of a loaded random LM on random int8
// rows (including extreme values) against float math on the dequantized inputs: at most 1 LSB.
func TestLMOpsAgainstFloat(t *testing.T) {
	lm, m := loadRandomLM(t, smallLMConfig(8, 0), 1)
	r := rand.New(rand.NewPCG(5, 6))
	scratch := make([]int32, lm.scratchN)
	seen := map[qmodel.OpKind]bool{}
	for si := range lm.steps {
		st := &lm.steps[si]
		op := &m.Ops[si]
		sIn, zIn := 0.0, int32(0)
		if m.Tensors[st.in].Quant != nil {
			sIn, zIn = scaleZero(m, st.in)
		}
		sOut, zOut := 0.0, int32(0)
		if st.kind != qmodel.OpLMHead && st.kind != qmodel.OpDequantize {
			sOut, zOut = scaleZero(m, st.out)
		}
		for trial := 0; trial < 20; trial++ {
			x := randRow(r, st.inN)
			if trial == 0 {
				for i := range x {
					x[i] = -128
				}
			}
			got := make([]int8, st.outN)
			want := make([]int32, st.outN)
			switch st.kind {
			case qmodel.OpEmbedding:
				tok := r.IntN(lm.vocab)
				embeddingRow(got, st, tok)
				w, _ := lmref.Dequantized(m, op)
				for i := range want {
					want[i] = quantRef(float64(w[tok*st.outN+i]), sOut, zOut)
				}
			case qmodel.OpRMSNorm:
				rmsNormRow(got, x, st)
				gain, _ := m.Tensors[op.Inputs[1]].Float32Values()
				var ss float64
				for _, q := range x {
					v := sIn * float64(int32(q)-zIn)
					ss += v * v
				}
				inv := 1 / math.Sqrt(ss/float64(len(x))+float64(op.LM.Eps))
				for i, q := range x {
					want[i] = quantRef(sIn*float64(int32(q)-zIn)*inv*float64(gain[i]), sOut, zOut)
				}
			case qmodel.OpRoPE:
				pos := r.IntN(op.LM.MaxSeq)
				ropeRow(got, x, st, pos)
				hd := op.LM.HeadDim
				for h := 0; h < op.LM.Heads; h++ {
					for j := 0; j < hd/2; j++ {
						a := float64(pos) * math.Pow(float64(op.LM.Theta), -2*float64(j)/float64(hd))
						x0, x1 := sIn*float64(int32(x[h*hd+2*j])-zIn), sIn*float64(int32(x[h*hd+2*j+1])-zIn)
						want[h*hd+2*j] = quantRef(x0*math.Cos(a)-x1*math.Sin(a), sOut, zOut)
						want[h*hd+2*j+1] = quantRef(x0*math.Sin(a)+x1*math.Cos(a), sOut, zOut)
					}
				}
			case qmodel.OpSwiGLU:
				u := randRow(r, st.inN)
				swigluRow(got, x, u, st)
				sU, zU := scaleZero(m, st.in2)
				for i := range want {
					g := sIn * float64(int32(x[i])-zIn)
					want[i] = quantRef(g/(1+math.Exp(-g))*sU*float64(int32(u[i])-zU), sOut, zOut)
				}
			case qmodel.OpHadamard:
				hadamardRow(got, x, st, scratch)
				b := op.LM.Block
				for o := 0; o < st.inN; o += b {
					for i := 0; i < b; i++ {
						var s float64
						for j := 0; j < b; j++ {
							sign := 1.0
							if popcount(i&j)%2 == 1 {
								sign = -1
							}
							s += sign * sIn * float64(int32(x[o+j])-zIn)
						}
						want[o+i] = quantRef(s/math.Sqrt(float64(b)), sOut, zOut)
					}
				}
			case qmodel.OpAttention:
				testAttentionRow(t, r, m, st, op, scratch)
				seen[st.kind] = true
				continue
			default:
				continue
			}
			seen[st.kind] = true
			checkLSB(t, st.name, got, want, 1)
		}
	}
	for _, k := range []qmodel.OpKind{qmodel.OpEmbedding, qmodel.OpRMSNorm, qmodel.OpRoPE, qmodel.OpSwiGLU, qmodel.OpHadamard, qmodel.OpAttention} {
		if !seen[k] {
			t.Errorf("op %v not tested", k)
		}
	}
}

func popcount(x int) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// testAttentionRow fills a KV cache with random int8 rows and checks attentionRow against float
// softmax attention over the same cache values.
func testAttentionRow(t *testing.T, r *rand.Rand, m *qmodel.Model, st *lmStep, op *qmodel.Op, scratch []int32) {
	a := st.att
	kc := make([]int8, a.kvHeads*a.maxSeq*a.hd)
	vc := make([]int8, len(kc))
	for i := range kc {
		kc[i], vc[i] = int8(r.IntN(255)-127), int8(r.IntN(255)-127)
	}
	pos := r.IntN(a.maxSeq)
	q := randRow(r, st.inN)
	got := make([]int8, st.outN)
	attentionRow(got, q, st, kc, vc, pos, scratch, make([]int64, a.hd), make([]int16, a.hd))
	ref := make([]int8, st.outN)
	attentionRowRef(ref, q, st, kc, vc, pos, scratch)
	for i := range ref {
		if got[i] != ref[i] {
			t.Fatalf("%s at position %d: output %d = %d, plain form gives %d", st.name, pos, i, got[i], ref[i])
		}
	}
	sQ, zQ := scaleZero(m, st.in)
	sOut, zOut := scaleZero(m, st.out)
	ks, _ := m.Tensors[op.Inputs[3]].Float32Values()
	vs, _ := m.Tensors[op.Inputs[4]].Float32Values()
	hd, ms := a.hd, a.maxSeq
	want := make([]int32, st.outN)
	for h := 0; h < a.heads; h++ {
		g := h / (a.heads / a.kvHeads)
		p := make([]float64, pos+1)
		mx := math.Inf(-1)
		for tt := range p {
			var s float64
			for d := 0; d < hd; d++ {
				s += sQ * float64(int32(q[h*hd+d])-zQ) * float64(ks[g]) * float64(kc[(g*ms+tt)*hd+d])
			}
			p[tt] = s / math.Sqrt(float64(hd))
			mx = math.Max(mx, p[tt])
		}
		var sum float64
		for tt := range p {
			p[tt] = math.Exp(p[tt] - mx)
			sum += p[tt]
		}
		for d := 0; d < hd; d++ {
			var o float64
			for tt := range p {
				o += p[tt] / sum * float64(vs[g]) * float64(vc[(g*ms+tt)*hd+d])
			}
			want[h*hd+d] = quantRef(o, sOut, zOut)
		}
	}
	checkLSB(t, st.name, got, want, 1)
}

func TestLMPrefillMatchesDecode(t *testing.T) {
	for _, c := range []lmref.Config{smallLMConfig(8, 0), smallLMConfig(4, 16), smallLMConfig(4, 0)} {
		lm, _ := loadRandomLM(t, c, 2)
		r := rand.New(rand.NewPCG(7, 8))
		toks := make([]int, lm.ContextLength())
		for i := range toks {
			toks[i] = r.IntN(lm.Vocab())
		}
		dec := lm.NewSession()
		var want [][]float32
		for _, tk := range toks {
			l, err := dec.Decode(tk)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, append([]float32(nil), l...))
		}
		for _, rows := range []int{1, 5, 32} {
			s := lm.NewSessionWith(LMSessionOptions{PrefillRows: rows})
			// Prefill a prefix, then decode the rest: every logit identical to token-by-token decoding.
			n := 0
			if err := s.PrefillEach(toks[:len(toks)-3], func(i int, l []float32) {
				n++
				for j := range l {
					if l[j] != want[i][j] {
						t.Fatalf("bits %d rows %d: token %d logit %d: prefill %v, decode %v", c.Bits, rows, i, j, l[j], want[i][j])
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			for i := len(toks) - 3; i < len(toks); i++ {
				l, err := s.Decode(toks[i])
				if err != nil {
					t.Fatal(err)
				}
				for j := range l {
					if l[j] != want[i][j] {
						t.Fatalf("decode after prefill differs at token %d", i)
					}
				}
			}
			if n != len(toks)-3 {
				t.Fatalf("PrefillEach called %d times", n)
			}
		}
	}
}

// TestLMAgainstFloatReference runs the integer LM and the float32 reference (lmref.Float, same
// dequantized weights, float activations) on one random sequence: the integer logits must follow
// the float ones (correlation) and agree on most argmaxes.
func TestLMAgainstFloatReference(t *testing.T) {
	for _, c := range []lmref.Config{smallLMConfig(8, 0), smallLMConfig(4, 16)} {
		lm, m := loadRandomLM(t, c, 3)
		f, err := lmref.NewFloat(m)
		if err != nil {
			t.Fatal(err)
		}
		s := lm.NewSession()
		r := rand.New(rand.NewPCG(9, 10))
		agree, n := 0, 0
		var sxy, sxx, syy float64
		for i := 0; i < lm.ContextLength(); i++ {
			tk := r.IntN(lm.Vocab())
			li, err := s.Decode(tk)
			if err != nil {
				t.Fatal(err)
			}
			lf, err := f.Step(tk)
			if err != nil {
				t.Fatal(err)
			}
			if argmax(li) == argmax(lf) {
				agree++
			}
			n++
			var mi, mf float64
			for j := range li {
				mi += float64(li[j])
				mf += float64(lf[j])
			}
			mi, mf = mi/float64(len(li)), mf/float64(len(lf))
			for j := range li {
				x, y := float64(li[j])-mi, float64(lf[j])-mf
				sxy, sxx, syy = sxy+x*y, sxx+x*x, syy+y*y
			}
		}
		corr := sxy / math.Sqrt(sxx*syy)
		t.Logf("bits %d group %d: argmax agreement %d/%d, logit correlation %.4f", c.Bits, c.Group, agree, n, corr)
		if corr < 0.98 || float64(agree) < 0.75*float64(n) {
			t.Fatalf("integer LM far from the float reference: correlation %.4f, agreement %d/%d", corr, agree, n)
		}
	}
}

func argmax(v []float32) int {
	b := 0
	for i, x := range v {
		if x > v[b] {
			b = i
		}
	}
	return b
}

func TestLMNoAllocsAfterWarmup(t *testing.T) {
	for _, c := range []lmref.Config{smallLMConfig(8, 0), smallLMConfig(4, 16)} {
		lm, _ := loadRandomLM(t, c, 4)
		s := lm.NewSession()
		prompt := []int{1, 2, 3, 4, 5}
		run := func() {
			s.Reset()
			if _, err := s.Prefill(prompt); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 8; i++ {
				if _, err := s.Decode(i); err != nil {
					t.Fatal(err)
				}
			}
		}
		run()
		if a := testing.AllocsPerRun(5, run); a != 0 {
			t.Fatalf("bits %d: %v allocations per prefill+decode run", c.Bits, a)
		}
	}
}

func TestLMBadInput(t *testing.T) {
	lm, m := loadRandomLM(t, smallLMConfig(8, 0), 5)
	s := lm.NewSession()
	if _, err := s.Prefill(nil); err == nil {
		t.Fatal("empty prefill accepted")
	}
	if _, err := s.Decode(lm.Vocab()); err == nil {
		t.Fatal("token outside the vocabulary accepted")
	}
	if _, err := s.Decode(-1); err == nil {
		t.Fatal("negative token accepted")
	}
	big := make([]int, lm.ContextLength()+1)
	if _, err := s.Prefill(big); !errors.Is(err, ErrContextFull) {
		t.Fatalf("overlong prefill: %v", err)
	}
	if s.Pos() != 0 {
		t.Fatal("a rejected prefill moved the position")
	}
	for i := 0; i < lm.ContextLength(); i++ {
		if _, err := s.Decode(1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Decode(1); !errors.Is(err, ErrContextFull) {
		t.Fatalf("decode past the context: %v", err)
	}
	if _, err := Load(m); err == nil {
		t.Fatal("Load accepted a language model")
	}
	cnn := tinyCNNForLMTest(t)
	if _, err := LoadLM(cnn); err == nil {
		t.Fatal("LoadLM accepted a CNN")
	}
}

func tinyCNNForLMTest(t *testing.T) *qmodel.Model {
	b := qmodel.NewBuilder("fc")
	x := b.Input("x", qmodel.Float32, []int{3}, nil)
	q := b.Quantize("q", x, quant.Params{Scale: 0.1})
	fc := b.FullyConnected("fc", q, qmodel.Weights{Values: []int8{1, -2, 3, 4, 5, -6}, Shape: []int{2, 3}, Scales: []float32{0.5}}, nil, qmodel.ActNone, quant.Params{Scale: 0.2})
	b.Output(b.Dequantize("y", fc))
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLMInt4StaysPacked: int4 linear weights keep one 4-bit copy (no int8 copy resident), and
// int8 weights one int8 copy.
func TestLMInt4StaysPacked(t *testing.T) {
	lm8, m := loadRandomLM(t, smallLMConfig(8, 0), 6)
	lm4, _ := loadRandomLM(t, smallLMConfig(4, 16), 6)
	var linear int64
	for i := range m.Ops {
		if k := m.Ops[i].Kind; k == qmodel.OpLinear || k == qmodel.OpLMHead {
			linear += int64(m.Tensors[m.Ops[i].Inputs[1]].NumElements())
		}
	}
	for i := range lm4.steps {
		if w := lm4.steps[i].lin.w4; w != nil {
			n, k := int64(w.N()), int64(w.K())
			if got := w.ResidentBytes(); got > (n+15)/16*16*k/2+4*((n+15)/16*16*k/int64(w.GroupSize())+n)+64 { // one copy of weights and of scales
				t.Fatalf("%s: %d resident bytes for %dx%d int4 weights", lm4.steps[i].name, got, n, k)
			}
		}
	}
	for i := range lm8.steps {
		if w := lm8.steps[i].lin.w8; w != nil {
			n, k := int64(w.N()), int64(w.K())
			if got := w.ResidentBytes(); got > (n+15)/16*16*((k+3)/4*4)+4*n {
				t.Fatalf("%s: %d resident bytes for %dx%d int8 weights: more than one copy", lm8.steps[i].name, got, n, k)
			}
		}
	}
	t.Logf("resident weights: W8 %d bytes, W4 g16 %d bytes (%d linear weights)", lm8.WeightBytes(), lm4.WeightBytes(), linear)
	if lm4.WeightBytes() >= lm8.WeightBytes() {
		t.Fatal("int4 model not smaller than int8")
	}
}
