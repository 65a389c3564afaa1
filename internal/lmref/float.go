// Package lmref is the float32 reference of qatgo's integer language-model runtime: a forward
// pass of a qmodel language model in float32 on its dequantized weights (same ops, same KV-cache
// algorithm, float activations, exact float non-linearities), and a builder of random-weight LMs
// through the qmodel Builder for tests and benchmarks. It lives outside the deploy path (infer,
// qmodel, kernels, quant do not import it); tests and the bench command do.
package lmref

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/fgemm"
	"github.com/qatgo/qatgo/qmodel"
)

// Float is a float32 forward pass of a qmodel language model. Linear layers run on fgemm
// (x·Wᵀ with Wᵀ stored [K, N], so one token's product reads the weights in place).
type Float struct {
	qm     *qmodel.Model
	ops    []fop
	vals   [][]float32 // per tensor, one token
	vocab  int
	ctx    int
	pos    int
	logits int
	// Observe, when set, is called with every op output (by op name) of every token: the
	// calibration hook of RandomLM. For Attention it is also called with "<name>/k" and
	// "<name>/v" (the cached key and value vectors).
	Observe func(name string, v []float32)
}

type fop struct {
	op     *qmodel.Op
	wt     []float32 // Linear/LMHead: [K][N]; Embedding: [V][D]
	n, k   int
	gain   []float32
	cos    []float64
	sin    []float64
	kc, vc []float32 // [kvHeads][ctx][hd]
	p      []float64 // attention weights of one head
}

// NewFloat builds the float forward pass of m (an LM) with dequantized weights.
func NewFloat(m *qmodel.Model) (*Float, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !m.IsLM() {
		return nil, fmt.Errorf("lmref: %q is not a language model", m.Name)
	}
	f := &Float{qm: m, ctx: m.ContextLength(), logits: m.Outputs[0], vals: make([][]float32, len(m.Tensors))}
	f.vocab = m.Tensors[f.logits].Shape[0]
	for i := range m.Tensors {
		if !m.Tensors[i].IsConst() {
			f.vals[i] = make([]float32, m.Tensors[i].NumElements())
		}
	}
	for i := range m.Ops {
		op := &m.Ops[i]
		o := fop{op: op}
		switch op.Kind {
		case qmodel.OpEmbedding, qmodel.OpLinear, qmodel.OpLMHead:
			w, err := Dequantized(m, op)
			if err != nil {
				return nil, err
			}
			t := &m.Tensors[op.Inputs[1]]
			o.n, o.k = t.Shape[0], t.Shape[1]
			if op.Kind == qmodel.OpEmbedding {
				o.wt = w
			} else {
				o.wt = make([]float32, len(w))
				for r := 0; r < o.n; r++ {
					for c := 0; c < o.k; c++ {
						o.wt[c*o.n+r] = w[r*o.k+c]
					}
				}
			}
		case qmodel.OpRMSNorm:
			g, err := m.Tensors[op.Inputs[1]].Float32Values()
			if err != nil {
				return nil, err
			}
			o.gain = g
		case qmodel.OpRoPE:
			hd, half := op.LM.HeadDim, op.LM.HeadDim/2
			o.cos, o.sin = make([]float64, op.LM.MaxSeq*half), make([]float64, op.LM.MaxSeq*half)
			for t := 0; t < op.LM.MaxSeq; t++ {
				for j := 0; j < half; j++ {
					a := float64(t) * math.Pow(float64(op.LM.Theta), -2*float64(j)/float64(hd))
					o.cos[t*half+j], o.sin[t*half+j] = math.Cos(a), math.Sin(a)
				}
			}
		case qmodel.OpAttention:
			n := op.LM.KVHeads * op.LM.MaxSeq * op.LM.HeadDim
			o.kc, o.vc = make([]float32, n), make([]float32, n)
			o.p = make([]float64, op.LM.MaxSeq)
		}
		f.ops = append(f.ops, o)
	}
	return f, nil
}

// Dequantized returns the real weights [N*K] of an Embedding, Linear or LMHead op:
// scale[row] * groupScale[row][k/G] * q.
func Dequantized(m *qmodel.Model, op *qmodel.Op) ([]float32, error) {
	t := &m.Tensors[op.Inputs[1]]
	q, err := t.Int8Values()
	if err != nil {
		return nil, err
	}
	n, k := t.Shape[0], t.Shape[1]
	var gs []int32
	g := k
	if len(op.Inputs) == 3 {
		gt := &m.Tensors[op.Inputs[2]]
		if gs, err = gt.Int32Values(); err != nil {
			return nil, err
		}
		g = k / gt.Shape[1]
	}
	w := make([]float32, n*k)
	for r := 0; r < n; r++ {
		s := t.Quant.Scales[min(r, len(t.Quant.Scales)-1)]
		for c := 0; c < k; c++ {
			v := s * float32(q[r*k+c])
			if gs != nil {
				v *= float32(gs[r*(k/g)+c/g])
			}
			w[r*k+c] = v
		}
	}
	return w, nil
}

// Reset empties the context.
func (f *Float) Reset() { f.pos = 0 }

// Pos returns the number of tokens in the context.
func (f *Float) Pos() int { return f.pos }

// Vocab returns the number of logits.
func (f *Float) Vocab() int { return f.vocab }

// Step appends one token and returns the logits (valid until the next call).
func (f *Float) Step(tok int) ([]float32, error) {
	if f.pos >= f.ctx {
		return nil, fmt.Errorf("lmref: context of %d tokens is full", f.ctx)
	}
	if tok < 0 || tok >= f.vocab {
		return nil, fmt.Errorf("lmref: token %d outside [0,%d)", tok, f.vocab)
	}
	for i := range f.ops {
		o := &f.ops[i]
		op := o.op
		out := f.vals[op.Outputs[0]]
		in := f.vals[op.Inputs[0]]
		switch op.Kind {
		case qmodel.OpEmbedding:
			copy(out, o.wt[tok*o.k:(tok+1)*o.k])
		case qmodel.OpRMSNorm:
			var ss float64
			for _, x := range in {
				ss += float64(x) * float64(x)
			}
			inv := 1 / math.Sqrt(ss/float64(len(in))+float64(op.LM.Eps))
			for j, x := range in {
				out[j] = float32(float64(x)*inv) * o.gain[j]
			}
		case qmodel.OpLinear, qmodel.OpLMHead:
			fgemm.Sgemm(false, false, 1, o.n, o.k, 1, in, o.k, o.wt, o.n, 0, out, o.n)
		case qmodel.OpRoPE:
			hd, half := op.LM.HeadDim, op.LM.HeadDim/2
			cs, sn := o.cos[f.pos*half:(f.pos+1)*half], o.sin[f.pos*half:(f.pos+1)*half]
			for h := 0; h < op.LM.Heads; h++ {
				x, y := in[h*hd:(h+1)*hd], out[h*hd:(h+1)*hd]
				for j := 0; j < half; j++ {
					c, s := float32(cs[j]), float32(sn[j])
					x0, x1 := x[2*j], x[2*j+1]
					y[2*j] = x0*c - x1*s
					y[2*j+1] = x0*s + x1*c
				}
			}
		case qmodel.OpAttention:
			f.attention(o, in, f.vals[op.Inputs[1]], f.vals[op.Inputs[2]], out)
		case qmodel.OpSwiGLU:
			up := f.vals[op.Inputs[1]]
			for j, g := range in {
				out[j] = g / (1 + float32(math.Exp(float64(-g)))) * up[j]
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
			b := f.vals[op.Inputs[1]]
			for j := range out {
				out[j] = in[j] + b[j]
			}
		case qmodel.OpDequantize:
			copy(out, in)
		default:
			return nil, fmt.Errorf("lmref: op %v not supported", op.Kind)
		}
		if f.Observe != nil {
			f.Observe(op.Name, out)
		}
	}
	f.pos++
	return f.vals[f.logits], nil
}

func (f *Float) attention(o *fop, q, k, v, out []float32) {
	a := o.op.LM
	hd, ms, pos := a.HeadDim, a.MaxSeq, f.pos
	for g := 0; g < a.KVHeads; g++ {
		copy(o.kc[(g*ms+pos)*hd:(g*ms+pos+1)*hd], k[g*hd:(g+1)*hd])
		copy(o.vc[(g*ms+pos)*hd:(g*ms+pos+1)*hd], v[g*hd:(g+1)*hd])
	}
	if f.Observe != nil {
		f.Observe(o.op.Name+"/k", k)
		f.Observe(o.op.Name+"/v", v)
	}
	scale := 1 / math.Sqrt(float64(hd))
	n := pos + 1
	p := o.p[:n]
	group := a.Heads / a.KVHeads
	for h := 0; h < a.Heads; h++ {
		g := h / group
		mx := math.Inf(-1)
		for t := 0; t < n; t++ {
			var s float32
			kr := o.kc[(g*ms+t)*hd : (g*ms+t+1)*hd]
			for d := 0; d < hd; d++ {
				s += q[h*hd+d] * kr[d]
			}
			p[t] = float64(s) * scale
			mx = math.Max(mx, p[t])
		}
		var sum float64
		for t := range p {
			p[t] = math.Exp(p[t] - mx)
			sum += p[t]
		}
		y := out[h*hd : (h+1)*hd]
		clear(y)
		for t := 0; t < n; t++ {
			w := float32(p[t] / sum)
			vr := o.vc[(g*ms+t)*hd : (g*ms+t+1)*hd]
			for d := 0; d < hd; d++ {
				y[d] += w * vr[d]
			}
		}
	}
}
