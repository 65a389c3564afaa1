package graph

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Ops for the language-model layers that Gorgonia v0.9.18 lacks: an embedding gather with a
// scatter-add gradient, the head split/merge permutation of attention with rotary position
// embedding folded in, and a causal (masked) softmax. All are differentiable (SymDiff), reuse
// their output buffers (UsePreallocDo) and work on float32 and float64.

type lmKind byte

const (
	lmGather      lmKind = iota // (table [V,D], ids [N]) -> [N,D]
	lmScatter                   // (g [N,D], ids [N]) -> [V,D], rows of g summed by id
	lmSplit                     // (x [B*T, H*hd]) -> [B*H, T, hd], rotated by RoPE when base > 0
	lmMerge                     // (x [B*H, T, hd]) -> [B*T, H*hd], the transpose of lmSplit
	lmSoftmax                   // (s [M,T,T]) -> causal softmax(scale*s) over the last axis
	lmSoftmaxGrad               // (y, gy [M,T,T]) -> scale*y*(gy - sum(gy*y))
)

var lmNames = [...]string{"EmbeddingGather", "EmbeddingScatter", "SplitHeads", "MergeHeads", "CausalSoftmax", "CausalSoftmaxGrad"}

type lmOp struct {
	kind lmKind
	// gather / scatter
	vocab, dim, n int
	// split / merge
	batch, seq, heads, hd int
	base                  float64 // RoPE base (theta); 0 = no rotation
	cos, sin              []float64
	// softmax: m rows of seq x seq
	m     int
	scale float64
	// own is the output buffer Do reuses from step to step (TapeMachine calls Do, not
	// UsePreallocDo, for these ops); the value of the previous run is overwritten.
	own *tensor.Dense
}

func (op *lmOp) Arity() int {
	switch op.kind {
	case lmGather, lmScatter, lmSoftmaxGrad:
		return 2
	}
	return 1
}

func (op *lmOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := func(d int) G.TensorType { return G.TensorType{Dims: d, Of: a} }
	switch op.kind {
	case lmGather, lmScatter:
		return hm.NewFnType(t(2), t(1), t(2))
	case lmSplit:
		return hm.NewFnType(t(2), t(3))
	case lmMerge:
		return hm.NewFnType(t(3), t(2))
	case lmSoftmax:
		return hm.NewFnType(t(3), t(3))
	}
	return hm.NewFnType(t(3), t(3), t(3))
}

func (op *lmOp) outShape() tensor.Shape {
	switch op.kind {
	case lmGather:
		return tensor.Shape{op.n, op.dim}
	case lmScatter:
		return tensor.Shape{op.vocab, op.dim}
	case lmSplit:
		return tensor.Shape{op.batch * op.heads, op.seq, op.hd}
	case lmMerge:
		return tensor.Shape{op.batch * op.seq, op.heads * op.hd}
	}
	return tensor.Shape{op.m, op.seq, op.seq}
}

func (op *lmOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.outShape(), nil }
func (op *lmOp) ReturnsPtr() bool                               { return false }
func (op *lmOp) CallsExtern() bool                              { return false }
func (op *lmOp) OverwritesInput() int                           { return -1 }
func (op *lmOp) String() string {
	return fmt.Sprintf("%s{v%d d%d n%d b%d t%d h%d hd%d base%g m%d scale%g}", lmNames[op.kind],
		op.vocab, op.dim, op.n, op.batch, op.seq, op.heads, op.hd, op.base, op.m, op.scale)
}
func (op *lmOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *lmOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *lmOp) DiffWRT(n int) []bool {
	switch op.kind {
	case lmGather:
		return []bool{true, false}
	case lmSplit, lmMerge, lmSoftmax:
		return []bool{true}
	}
	return make([]bool, n)
}

func (op *lmOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	var g *G.Node
	var err error
	switch op.kind {
	case lmGather:
		s := *op
		s.kind, s.own = lmScatter, nil
		g, err = G.ApplyOp(&s, grad, inputs[1])
		return G.Nodes{g, nil}, err
	case lmSplit, lmMerge:
		s := *op
		s.kind, s.own = lmMerge+lmSplit-op.kind, nil
		g, err = G.ApplyOp(&s, grad)
	case lmSoftmax:
		s := *op
		s.kind, s.own = lmSoftmaxGrad, nil
		g, err = G.ApplyOp(&s, output, grad)
	default:
		return nil, fmt.Errorf("graph: %v is not differentiable", op)
	}
	return G.Nodes{g}, err
}

func (op *lmOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != op.Arity() {
		return nil, fmt.Errorf("graph: %v: %d inputs", op, len(vals))
	}
	t, ok := vals[0].(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("graph: %v: input is %T", op, vals[0])
	}
	if op.own == nil || op.own.Dtype() != t.Dtype() {
		op.own = tensor.New(tensor.Of(t.Dtype()), tensor.WithShape(op.outShape()...))
	}
	return op.UsePreallocDo(op.own, vals...)
}

func (op *lmOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	out, ok := prealloc.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("graph: %v: prealloc is %T", op, prealloc)
	}
	var err error
	switch d := out.Data().(type) {
	case []float32:
		var in [][]float32
		if in, err = dataOf[float32](vals); err == nil {
			err = lmKernel(op, d, in)
		}
	case []float64:
		var in [][]float64
		if in, err = dataOf[float64](vals); err == nil {
			err = lmKernel(op, d, in)
		}
	default:
		err = fmt.Errorf("unsupported dtype %v", out.Dtype())
	}
	if err != nil {
		return nil, fmt.Errorf("graph: %v: %w", op, err)
	}
	return out, nil
}

func tokenID[F float32 | float64](v F, vocab int) (int, error) {
	id := int(v)
	if F(id) != v || id < 0 || id >= vocab {
		return 0, fmt.Errorf("token id %v outside [0, %d)", v, vocab)
	}
	return id, nil
}

func lmKernel[F float32 | float64](op *lmOp, out []F, in [][]F) error {
	switch op.kind {
	case lmGather:
		table, ids := in[0], in[1]
		if len(ids) != op.n || len(table) != op.vocab*op.dim {
			return fmt.Errorf("input sizes %d, %d", len(table), len(ids))
		}
		for i, v := range ids {
			id, err := tokenID(v, op.vocab)
			if err != nil {
				return err
			}
			copy(out[i*op.dim:(i+1)*op.dim], table[id*op.dim:(id+1)*op.dim])
		}
	case lmScatter:
		g, ids := in[0], in[1]
		clear(out)
		for i, v := range ids {
			id, err := tokenID(v, op.vocab)
			if err != nil {
				return err
			}
			dst, src := out[id*op.dim:(id+1)*op.dim], g[i*op.dim:(i+1)*op.dim]
			for j := range dst {
				dst[j] += src[j]
			}
		}
	case lmSplit, lmMerge:
		heads(op, out, in[0])
	case lmSoftmax:
		causalSoftmax(op, out, in[0])
	case lmSoftmaxGrad:
		causalSoftmaxGrad(op, out, in[0], in[1])
	}
	return nil
}

// heads moves element (b, t, h, i) between the [B*T, H*hd] and [B*H, T, hd] layouts, rotating
// each (2p, 2p+1) pair by angle t*base^(-2p/hd) (split) or by its negative (merge).
func heads[F float32 | float64](op *lmOp, out, x []F) {
	B, T, H, hd := op.batch, op.seq, op.heads, op.hd
	half := hd / 2
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			for h := 0; h < H; h++ {
				tok := ((b*T)+t)*H*hd + h*hd
				hed := ((b*H+h)*T + t) * hd
				src, dst := tok, hed
				if op.kind == lmMerge {
					src, dst = hed, tok
				}
				xs, ys := x[src:src+hd], out[dst:dst+hd]
				if op.base == 0 {
					copy(ys, xs)
					continue
				}
				cs, sn := op.cos[t*half:(t+1)*half], op.sin[t*half:(t+1)*half]
				for p := 0; p < half; p++ {
					c, s := F(cs[p]), F(sn[p])
					if op.kind == lmMerge {
						s = -s
					}
					x0, x1 := xs[2*p], xs[2*p+1]
					ys[2*p] = x0*c - x1*s
					ys[2*p+1] = x0*s + x1*c
				}
			}
		}
	}
}

func causalSoftmax[F float32 | float64](op *lmOp, out, s []F) {
	T := op.seq
	sc := F(op.scale)
	for r := 0; r < op.m*T; r++ {
		t := r % T
		row, y := s[r*T:(r+1)*T], out[r*T:(r+1)*T]
		mx := row[0] * sc
		for j := 1; j <= t; j++ {
			mx = max(mx, row[j]*sc)
		}
		var sum F
		for j := 0; j <= t; j++ {
			e := F(math.Exp(float64(row[j]*sc - mx)))
			y[j] = e
			sum += e
		}
		inv := 1 / sum
		for j := 0; j <= t; j++ {
			y[j] *= inv
		}
		clear(y[t+1:])
	}
}

func causalSoftmaxGrad[F float32 | float64](op *lmOp, out, y, gy []F) {
	T := op.seq
	sc := F(op.scale)
	for r := 0; r < op.m*T; r++ {
		t := r % T
		yr, gr, o := y[r*T:(r+1)*T], gy[r*T:(r+1)*T], out[r*T:(r+1)*T]
		var dot F
		for j := 0; j <= t; j++ {
			dot += gr[j] * yr[j]
		}
		for j := 0; j <= t; j++ {
			o[j] = sc * yr[j] * (gr[j] - dot)
		}
		clear(o[t+1:])
	}
}

// Embedding looks up rows of table [V, D] for token ids [N] (a vector of the table's float
// type holding integers in [0, V)) and returns [N, D]. The gradient with respect to the table
// adds each output row's gradient into the row of its id (scatter-add); ids get no gradient. An
// id that is not an integer in range makes the machine's run fail with an error.
func Embedding(table, ids *G.Node) (*G.Node, error) {
	ts, is := table.Shape(), ids.Shape()
	if ts.Dims() != 2 || is.Dims() != 1 || table.Dtype() != ids.Dtype() {
		return nil, fmt.Errorf("graph: Embedding needs table [V,D] and ids [N] of one dtype, got %v %v and %v %v", ts, table.Dtype(), is, ids.Dtype())
	}
	return G.ApplyOp(&lmOp{kind: lmGather, vocab: ts[0], dim: ts[1], n: is[0]}, table, ids)
}

// ropeTables returns cos and sin of t*base^(-2p/hd) for t < seq, p < hd/2, row-major [seq, hd/2].
func ropeTables(seq, hd int, base float64) (cos, sin []float64) {
	half := hd / 2
	cos, sin = make([]float64, seq*half), make([]float64, seq*half)
	for t := 0; t < seq; t++ {
		for p := 0; p < half; p++ {
			a := float64(t) * math.Pow(base, -2*float64(p)/float64(hd))
			cos[t*half+p], sin[t*half+p] = math.Cos(a), math.Sin(a)
		}
	}
	return cos, sin
}

// SplitHeads reshapes x [B*T, H*hd] (rows ordered batch-major, then position) to per-head
// sequences [B*H, T, hd]. With ropeBase > 0 it applies rotary position embedding (Su et al. 2021,
// "RoFormer"): in every head, the pair (x[2p], x[2p+1]) at position t is rotated by the angle
// t*ropeBase^(-2p/hd), so that the dot product of a rotated query at position m and a rotated key
// at position n depends on m-n only. hd must be even when rotating.
func SplitHeads(x *G.Node, batch, seq, heads int, ropeBase float64) (*G.Node, error) {
	op, err := headsOp(lmSplit, x, batch, seq, heads, ropeBase)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(op, x)
}

// MergeHeads is the inverse of SplitHeads without rotation: [B*H, T, hd] -> [B*T, H*hd].
func MergeHeads(x *G.Node, batch, seq, heads int) (*G.Node, error) {
	op, err := headsOp(lmMerge, x, batch, seq, heads, 0)
	if err != nil {
		return nil, err
	}
	return G.ApplyOp(op, x)
}

func headsOp(k lmKind, x *G.Node, batch, seq, heads int, base float64) (*lmOp, error) {
	s := x.Shape()
	if batch < 1 || seq < 1 || heads < 1 || base < 0 {
		return nil, fmt.Errorf("graph: heads: batch %d, seq %d, heads %d, base %v", batch, seq, heads, base)
	}
	op := &lmOp{kind: k, batch: batch, seq: seq, heads: heads, base: base}
	switch {
	case k == lmSplit && s.Dims() == 2 && s[0] == batch*seq && s[1]%heads == 0:
		op.hd = s[1] / heads
	case k == lmMerge && s.Dims() == 3 && s[0] == batch*heads && s[1] == seq:
		op.hd = s[2]
	default:
		return nil, fmt.Errorf("graph: %s: input shape %v does not fit batch %d, seq %d, heads %d", lmNames[k], s, batch, seq, heads)
	}
	if base > 0 {
		if op.hd%2 != 0 {
			return nil, fmt.Errorf("graph: RoPE needs an even head dimension, got %d", op.hd)
		}
		op.cos, op.sin = ropeTables(seq, op.hd, base)
	}
	return op, nil
}

// CausalSoftmax returns softmax(scale*s) over the last axis of attention scores s [M, T, T] with
// the causal mask applied: row t attends to columns 0..t only (masked entries are exactly 0).
func CausalSoftmax(s *G.Node, scale float64) (*G.Node, error) {
	sh := s.Shape()
	if sh.Dims() != 3 || sh[1] != sh[2] {
		return nil, fmt.Errorf("graph: CausalSoftmax needs scores [M,T,T], got %v", sh)
	}
	return G.ApplyOp(&lmOp{kind: lmSoftmax, m: sh[0], seq: sh[1], scale: scale}, s)
}
