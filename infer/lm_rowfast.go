package infer

import (
	"math"
	"math/bits"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// The per-token ops of the LM runtime in the form a decode step runs: each computes its int32
// values (the same integers as the plain op of lm_ops.go) into a scratch row and requantizes the
// whole row at once with a kernels epilogue (AVX-512 where the path has it), so that the
// multiply-round-shift-clamp of every element is a vector instruction sequence instead of
// scalar code. The plain ops stay the reference: lm_rowfast_test.go checks every op here against
// them bit for bit, on every kernel path, with random and extreme inputs.

// lmFast holds the prepared epilogues of one step; nil when the step has no fast form (it then
// runs its plain op).
type lmFast struct {
	rq    kernels.RowRequant   // RoPE, SwiGLU, Hadamard, Add: the op's multiplier and clamp
	norm  *kernels.NormRequant // RMSNorm
	attRQ []kernels.RowRequant // Attention: the output epilogue of each KV head
	// RoPE: the tables interleaved per position for the vector form, [pos][hd]: c2 = cos_j at
	// 2j and 2j+1, s2 = -sin_j at 2j and sin_j at 2j+1 (shared by the steps of one table)
	c2, s2 []int32
}

// prepareFast builds the fast forms of the steps and sizes the int32 row scratch they need.
// A step whose constants the kernels refuse (a zero point outside their range) keeps its plain
// op.
func (lm *LM) prepareFast() {
	ropes := map[*int32][2][]int32{}
	for i := range lm.steps {
		st := &lm.steps[i]
		f := &lmFast{}
		var err error
		switch st.kind {
		case qmodel.OpRoPE:
			f.rq, err = kernels.NewRowRequant(st.mult.Multiplier(), st.zOut, -128, 127)
			p := &st.rope
			t, ok := ropes[&p.cos[0]]
			if !ok {
				t[0], t[1] = ropeInterleaved(p)
				ropes[&p.cos[0]] = t
				lm.weightBytes += int64(8 * len(t[0]))
			}
			f.c2, f.s2 = t[0], t[1]
		case qmodel.OpSwiGLU, qmodel.OpHadamard:
			f.rq, err = kernels.NewRowRequant(st.mult.Multiplier(), st.zOut, -128, 127)
		case qmodel.OpAdd:
			f.rq, err = kernels.NewRowRequant(st.mult.Multiplier(), st.add.zOut, st.add.lo, st.add.hi)
		case qmodel.OpEmbedding:
			_, err = kernels.NewRowRequant(quant.Multiplier{}, st.zOut, -128, 127) // checks zOut once
		case qmodel.OpRMSNorm:
			ms, neg := make([]quant.Multiplier, len(st.perRow)), make([]bool, len(st.perRow))
			for c, p := range st.perRow {
				ms[c], neg[c] = p.Multiplier(), st.sign[c] < 0
			}
			f.norm, err = kernels.NewNormRequant(ms, neg, 16+st.rms.shift, st.zIn, st.zOut)
		case qmodel.OpAttention:
			for _, m := range st.att.mo {
				rq, e := kernels.NewRowRequant(m.Multiplier(), st.zOut, -128, 127)
				if e != nil {
					err = e
				}
				f.attRQ = append(f.attRQ, rq)
			}
		default:
			continue
		}
		if err != nil {
			continue
		}
		st.fast = f
		lm.scratchN = max(lm.scratchN, st.inN, st.outN)
	}
}

// ropeInterleaved returns RoPE's tables in the layout of lmFast.c2 and lmFast.s2.
func ropeInterleaved(p *ropeParams) (c2, s2 []int32) {
	half := p.hd / 2
	c2, s2 = make([]int32, 2*len(p.cos)), make([]int32, 2*len(p.cos))
	for k := range p.cos {
		pos, j := k/half, k%half
		o := pos*p.hd + 2*j
		c2[o], c2[o+1] = p.cos[k], p.cos[k]
		s2[o], s2[o+1] = -p.sin[k], p.sin[k]
	}
	return c2, s2
}

// embeddingRowFast is embeddingRow: the row's integer values, then one epilogue.
func embeddingRowFast(dst []int8, st *lmStep, tok int, buf []int32) {
	t := &st.table
	d := t.d
	b := buf[:d]
	switch {
	case t.int4 && d%2 == 0: // whole bytes: low nibble first
		for i, w := range t.data[tok*d/2 : tok*d/2+d/2] {
			b[2*i], b[2*i+1] = int32(int8(w<<4)>>4), int32(int8(w)>>4)
		}
	case t.int4:
		j := tok * d
		for i := range b {
			b[i] = int32(int8(t.data[(j+i)/2]>>(4*((j+i)&1))<<4) >> 4)
		}
	default:
		for i, w := range t.data[tok*d : tok*d+d] {
			b[i] = int32(int8(w))
		}
	}
	if t.groups != nil {
		gs := t.groups[tok*(d/t.g) : (tok+1)*(d/t.g)]
		for k, s := range gs {
			for i := k * t.g; i < (k+1)*t.g; i++ {
				b[i] *= s
			}
		}
	}
	rq, _ := kernels.NewRowRequant(st.perRow[tok].Multiplier(), st.zOut, -128, 127) // zOut checked by prepareFast
	rq.Run(dst[:d], b)
}

// isqrtFast is isqrt64 (floor of the square root) for n < 2^63: a float64 square root corrected
// to the exact integer.
func isqrtFast(n uint64) uint64 {
	s := uint64(math.Sqrt(float64(n)))
	for s*s > n {
		s--
	}
	for (s+1)*(s+1) <= n {
		s++
	}
	return s
}

// rmsNormRowFast is rmsNormRow: the sum of squares and the integer rms in Go, the per-element
// division and requantization in kernels.NormRequant.
func rmsNormRowFast(dst, src []int8, st *lmStep) {
	d := st.inN
	z := int32(st.zIn)
	var s0, s1, s2, s3 uint64
	x := src[:d]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, e := int32(x[i])-z, int32(x[i+1])-z, int32(x[i+2])-z, int32(x[i+3])-z
		s0 += uint64(a * a)
		s1 += uint64(b * b)
		s2 += uint64(c * c)
		s3 += uint64(e * e)
	}
	for ; i < len(x); i++ {
		a := int32(x[i]) - z
		s0 += uint64(a * a)
	}
	ss := s0 + s1 + s2 + s3
	quo, _ := bits.Div64(ss>>32, ss<<32, uint64(d)) // ss < d*2^16: no overflow
	r := isqrtFast(quo + st.rms.epsQ)
	if r == 0 {
		r = 1
	}
	st.fast.norm.Run(dst, src, r)
}

// ropeRowFast is ropeRow: the rotated pairs in int32, then one epilogue for the row.
func ropeRowFast(dst, src []int8, st *lmStep, pos int, buf []int32) {
	p := &st.rope
	if ropeVector(dst, src, st, st.fast.c2[pos*p.hd:(pos+1)*p.hd], st.fast.s2[pos*p.hd:(pos+1)*p.hd]) {
		return
	}
	half := p.hd / 2
	cs, sn := p.cos[pos*half:(pos+1)*half], p.sin[pos*half:(pos+1)*half]
	n := p.heads * p.hd
	b := buf[:n]
	z := int64(st.zIn)
	for h := 0; h < p.heads; h++ {
		x, y := src[h*p.hd:(h+1)*p.hd], b[h*p.hd:(h+1)*p.hd]
		x, y = x[:2*half], y[:2*half]
		for j := range cs {
			x0, x1 := int64(x[2*j])-z, int64(x[2*j+1])-z
			c, s := int64(cs[j]), int64(sn[j])
			y[2*j] = int32(roundShift64(x0*c-x1*s, 15))
			y[2*j+1] = int32(roundShift64(x0*s+x1*c, 15))
		}
	}
	st.fast.rq.Run(dst[:n], b)
}

// swigluRowFast is swigluRow: the products silu(gate)*up' in int32, then one epilogue.
func swigluRowFast(dst, gate, up []int8, st *lmStep, buf []int32) {
	n := st.inN
	k := swigluVector(dst[:n], gate[:n], up[:n], st)
	if k == n {
		return
	}
	b := buf[:n-k]
	g, u := gate[k:n], up[k:n]
	tab, z := st.silu, st.zIn2
	for i := range b {
		b[i] = tab[uint8(g[i])^0x80] * (int32(u[i]) - z)
	}
	st.fast.rq.Run(dst[k:n], b)
}

// hadamardRowFast is hadamardRow with its epilogue on the whole row.
func hadamardRowFast(dst, src []int8, st *lmStep, buf []int32) {
	n, b := st.inN, st.block
	buf = buf[:n]
	for i, q := range src[:n] {
		buf[i] = int32(q) - st.zIn
	}
	for o := 0; o < n; o += b {
		v := buf[o : o+b]
		for h := 1; h < b; h <<= 1 {
			for i := 0; i < b; i += 2 * h {
				for j := i; j < i+h; j++ {
					x, y := v[j], v[j+h]
					v[j], v[j+h] = x+y, x-y
				}
			}
		}
	}
	st.fast.rq.Run(dst[:n], buf)
}

// lmAddFast is lmAdd: the sums of the two rescaled inputs (tables) in int32, one epilogue per
// chunk of len(buf) values.
func lmAddFast(dst, a, b []int8, st *lmStep, buf []int32) {
	ta, tb := &st.addTab[0], &st.addTab[1]
	k := addVector(dst, a, b, st)
	dst, a, b = dst[k:], a[k:], b[k:]
	for o := 0; o < len(a); o += len(buf) {
		x := a[o:min(o+len(buf), len(a))]
		y := b[o : o+len(x)]
		s := buf[:len(x)]
		for i, q := range x {
			s[i] = ta[uint8(q)^0x80] + tb[uint8(y[i])^0x80]
		}
		st.fast.rq.Run(dst[o:o+len(x)], s)
	}
}

// attentionRowFast is attentionRow with the output of each head requantized as one row; out32
// holds at least hd values.
func attentionRowFast(dst, q []int8, st *lmStep, kc, vc []int8, pos int, scratch []int32, acc []int64, q16 []int16, out32 []int32) {
	a := st.att
	hd, ms := a.hd, a.maxSeq
	group := a.heads / a.kvHeads
	n := pos + 1
	scores := scratch[:n]
	ex := scratch[n : 2*n]
	qq := q16[:hd]
	o := acc[:hd]
	ov := out32[:hd]
	for h := 0; h < a.heads; h++ {
		g := h / group
		for d, x := range q[h*hd : (h+1)*hd] {
			qq[d] = int16(int32(x) - a.zQ)
		}
		kernels.AttentionScores(scores, qq, kc[g*ms*hd:(g*ms+n)*hd])
		sum := attentionExp(ex, scores, a.expC[g])
		kernels.AttentionValues(o, ex, vc[g*ms*hd:(g*ms+n)*hd])
		if divVector(dst[h*hd:(h+1)*hd], o, sum, a.mo[g], st.zOut) {
			continue
		}
		dv := newDivider(uint64(sum))
		for d, v := range o {
			ov[d] = int32(dv.roundDiv(v << 16))
		}
		st.fast.attRQ[g].Run(dst[h*hd:(h+1)*hd], ov)
	}
}

// attentionExpPortable is the softmax stage of attentionRow: ex[t] = 2^(-(max-s_t)*c) in Q20
// (exp2NegQ16 of expScale.apply) for every score, and their sum.
func attentionExpPortable(ex, scores []int32, ec expScale) int64 {
	mx := int32(math.MinInt32)
	for _, s := range scores {
		mx = max(mx, s)
	}
	ex = ex[:len(scores)]
	var sum int64
	for t, s := range scores {
		e := exp2NegQ16(ec.apply(uint64(int64(mx) - int64(s))))
		ex[t] = int32(e)
		sum += e
	}
	return sum
}
