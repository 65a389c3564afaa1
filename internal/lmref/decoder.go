package lmref

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/fgemm"
	"github.com/qatgo/qatgo/qmodel"
)

// Decoder is the float32 decode-speed baseline of a qmodel language model: the same ops, weights
// (dequantized) and KV-cache algorithm as the integer runtime's LMSession.Decode, written the way
// a careful float32 Go runtime would write them, so that the integer runtime is compared with a
// fair float pass, not a strawman:
//
//   - every linear layer is one fgemm.Sgemm call per token on float32 weights in the layout that
//     fgemm reads fastest for a single row (W stored [N][K], the dot-product path; or Wᵀ [K][N],
//     read in place, see DecoderOptions);
//   - all activations, RoPE tables, the KV cache and the softmax are float32; exp is a float32
//     polynomial (expf, relative error below 2e-7) instead of float64 math.Exp;
//   - nothing allocates per token.
//
// Float (float.go) stays the accuracy reference (float64 norms and softmax); Decoder agrees with
// it to float32 rounding (TestDecoderMatchesFloat).
type Decoder struct {
	qm     *qmodel.Model
	ops    []dop
	vals   [][]float32
	vocab  int
	ctx    int
	pos    int
	logits int
	// WeightBytes is the size of the float32 weights one token reads (linear layers and the
	// embedding row are counted whole: every linear weight is read once per token).
	WeightBytes int64
}

// DecoderOptions configure NewDecoder.
type DecoderOptions struct {
	// Transposed stores linear weights as Wᵀ [K][N] (fgemm reads them in place with its GEMM
	// micro-kernel) instead of W [N][K] (fgemm's dot-product kernel, the faster one for a
	// single row on amd64).
	Transposed bool
	// AttentionGEMM runs the two products of attention (scores K·q and the weighted sum pᵀV of
	// each head) as fgemm.Sgemm calls instead of plain float32 loops.
	AttentionGEMM bool
}

type dop struct {
	attGEMM  bool
	op       *qmodel.Op
	wt       []float32
	n, k     int
	gain     []float32
	cos, sin []float32
	kc, vc   []float32
	p        []float32
}

// NewDecoder builds the float32 decoder of m (an LM) with dequantized weights.
func NewDecoder(m *qmodel.Model, opt DecoderOptions) (*Decoder, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !m.IsLM() {
		return nil, fmt.Errorf("lmref: %q is not a language model", m.Name)
	}
	d := &Decoder{qm: m, ctx: m.ContextLength(), logits: m.Outputs[0], vals: make([][]float32, len(m.Tensors))}
	d.vocab = m.Tensors[d.logits].Shape[0]
	for i := range m.Tensors {
		if !m.Tensors[i].IsConst() {
			d.vals[i] = make([]float32, m.Tensors[i].NumElements())
		}
	}
	for i := range m.Ops {
		op := &m.Ops[i]
		o := dop{op: op}
		switch op.Kind {
		case qmodel.OpEmbedding, qmodel.OpLinear, qmodel.OpLMHead:
			w, err := Dequantized(m, op)
			if err != nil {
				return nil, err
			}
			t := &m.Tensors[op.Inputs[1]]
			o.n, o.k = t.Shape[0], t.Shape[1]
			o.wt = w
			if op.Kind == qmodel.OpEmbedding {
				d.WeightBytes += int64(4 * o.k)
				break
			}
			d.WeightBytes += int64(4 * len(w))
			if opt.Transposed {
				o.wt = make([]float32, len(w))
				for r := 0; r < o.n; r++ {
					for c := 0; c < o.k; c++ {
						o.wt[c*o.n+r] = w[r*o.k+c]
					}
				}
				o.n = -o.n // marks the transposed layout
			}
		case qmodel.OpRMSNorm:
			g, err := m.Tensors[op.Inputs[1]].Float32Values()
			if err != nil {
				return nil, err
			}
			o.gain = g
		case qmodel.OpRoPE:
			hd, half := op.LM.HeadDim, op.LM.HeadDim/2
			o.cos, o.sin = make([]float32, op.LM.MaxSeq*half), make([]float32, op.LM.MaxSeq*half)
			for t := 0; t < op.LM.MaxSeq; t++ {
				for j := 0; j < half; j++ {
					a := float64(t) * math.Pow(float64(op.LM.Theta), -2*float64(j)/float64(hd))
					o.cos[t*half+j], o.sin[t*half+j] = float32(math.Cos(a)), float32(math.Sin(a))
				}
			}
		case qmodel.OpAttention:
			n := op.LM.KVHeads * op.LM.MaxSeq * op.LM.HeadDim
			o.kc, o.vc = make([]float32, n), make([]float32, n)
			o.p = make([]float32, op.LM.MaxSeq)
			o.attGEMM = opt.AttentionGEMM
		case qmodel.OpSwiGLU, qmodel.OpHadamard, qmodel.OpAdd, qmodel.OpDequantize:
		default:
			return nil, fmt.Errorf("lmref: op %v not supported", op.Kind)
		}
		d.ops = append(d.ops, o)
	}
	return d, nil
}

// Reset empties the context.
func (d *Decoder) Reset() { d.pos = 0 }

// Pos returns the number of tokens in the context.
func (d *Decoder) Pos() int { return d.pos }

// ContextLength returns the number of positions the decoder holds.
func (d *Decoder) ContextLength() int { return d.ctx }

// Decode appends one token and returns the logits (valid until the next call).
func (d *Decoder) Decode(tok int) ([]float32, error) {
	if d.pos >= d.ctx {
		return nil, fmt.Errorf("lmref: context of %d tokens is full", d.ctx)
	}
	if tok < 0 || tok >= d.vocab {
		return nil, fmt.Errorf("lmref: token %d outside [0,%d)", tok, d.vocab)
	}
	for i := range d.ops {
		o := &d.ops[i]
		op := o.op
		out := d.vals[op.Outputs[0]]
		in := d.vals[op.Inputs[0]]
		switch op.Kind {
		case qmodel.OpEmbedding:
			copy(out, o.wt[tok*o.k:(tok+1)*o.k])
		case qmodel.OpRMSNorm:
			var ss float32
			for _, x := range in {
				ss += x * x
			}
			inv := 1 / float32(math.Sqrt(float64(ss/float32(len(in))+op.LM.Eps)))
			g := o.gain[:len(in)]
			out = out[:len(in)]
			for j, x := range in {
				out[j] = x * inv * g[j]
			}
		case qmodel.OpLinear, qmodel.OpLMHead:
			if o.n < 0 {
				fgemm.Sgemm(false, false, 1, -o.n, o.k, 1, in, o.k, o.wt, -o.n, 0, out, -o.n)
			} else {
				fgemm.Sgemm(false, true, 1, o.n, o.k, 1, in, o.k, o.wt, o.k, 0, out, o.n)
			}
		case qmodel.OpRoPE:
			hd, half := op.LM.HeadDim, op.LM.HeadDim/2
			cs, sn := o.cos[d.pos*half:(d.pos+1)*half], o.sin[d.pos*half:(d.pos+1)*half]
			for h := 0; h < op.LM.Heads; h++ {
				x, y := in[h*hd:(h+1)*hd], out[h*hd:(h+1)*hd]
				for j := range cs {
					c, s := cs[j], sn[j]
					x0, x1 := x[2*j], x[2*j+1]
					y[2*j] = x0*c - x1*s
					y[2*j+1] = x0*s + x1*c
				}
			}
		case qmodel.OpAttention:
			d.attention(o, in, d.vals[op.Inputs[1]], d.vals[op.Inputs[2]], out)
		case qmodel.OpSwiGLU:
			up := d.vals[op.Inputs[1]][:len(in)]
			out = out[:len(in)]
			for j, g := range in {
				out[j] = g / (1 + expf(-g)) * up[j]
			}
		case qmodel.OpHadamard:
			copy(out, in)
			b := op.LM.Block
			sc := float32(1 / math.Sqrt(float64(b)))
			for s := 0; s < len(out); s += b {
				v := out[s : s+b]
				for h := 1; h < b; h <<= 1 {
					for i := 0; i < b; i += 2 * h {
						for j := i; j < i+h; j++ {
							v[j], v[j+h] = v[j]+v[j+h], v[j]-v[j+h]
						}
					}
				}
				for j := range v {
					v[j] *= sc
				}
			}
		case qmodel.OpAdd:
			b := d.vals[op.Inputs[1]][:len(out)]
			in = in[:len(out)]
			for j := range out {
				out[j] = in[j] + b[j]
			}
		case qmodel.OpDequantize:
			copy(out, in)
		}
	}
	d.pos++
	return d.vals[d.logits], nil
}

func (d *Decoder) attention(o *dop, q, k, v, out []float32) {
	a := o.op.LM
	hd, ms, pos := a.HeadDim, a.MaxSeq, d.pos
	for g := 0; g < a.KVHeads; g++ {
		copy(o.kc[(g*ms+pos)*hd:(g*ms+pos+1)*hd], k[g*hd:(g+1)*hd])
		copy(o.vc[(g*ms+pos)*hd:(g*ms+pos+1)*hd], v[g*hd:(g+1)*hd])
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	n := pos + 1
	p := o.p[:n]
	group := a.Heads / a.KVHeads
	for h := 0; h < a.Heads; h++ {
		g := h / group
		qh := q[h*hd : (h+1)*hd]
		kh := o.kc[g*ms*hd : (g*ms+n)*hd]
		mx := float32(math.Inf(-1))
		if o.attGEMM {
			fgemm.Sgemm(false, true, 1, n, hd, scale, qh, hd, kh, hd, 0, p, n)
			for _, s := range p {
				mx = max(mx, s)
			}
		} else {
			for t := range p {
				kr := kh[t*hd : (t+1)*hd]
				kr = kr[:len(qh)]
				var s float32
				for j, x := range qh {
					s += x * kr[j]
				}
				s *= scale
				p[t] = s
				mx = max(mx, s)
			}
		}
		var sum float32
		for t, s := range p {
			e := expf(s - mx)
			p[t] = e
			sum += e
		}
		inv := 1 / sum
		y := out[h*hd : (h+1)*hd]
		vh := o.vc[g*ms*hd : (g*ms+n)*hd]
		if o.attGEMM {
			fgemm.Sgemm(false, false, 1, hd, n, inv, p, n, vh, hd, 0, y, hd)
			continue
		}
		clear(y)
		for t, e := range p {
			w := e * inv
			vr := vh[t*hd : (t+1)*hd]
			vr = vr[:len(y)]
			for j := range y {
				y[j] += w * vr[j]
			}
		}
	}
}

// expf returns e^x in float32: x = n*ln2 + r with |r| <= ln2/2 (two-constant reduction), a
// degree-6 Taylor polynomial for e^r (relative error below 2e-7 on that interval) and the
// exponent n added to the float's bits. Inputs below -87.3 give 0, above 88.7 +Inf.
func expf(x float32) float32 {
	if x < -87.33654 {
		return 0
	}
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	const (
		log2e = 1.44269504
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	ni := int32(n)
	if ni < -126 { // subnormal result: scale in two steps
		return p * math.Float32frombits(uint32(ni+126+127)<<23) * math.Float32frombits(1<<23)
	}
	if ni > 127 { // 2^128 is not a float32: scale in two steps
		return p * 2 * math.Float32frombits(uint32(ni-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(ni+127)<<23)
}
