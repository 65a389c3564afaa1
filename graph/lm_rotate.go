package graph

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/qatgo/qatgo/fakequant"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Matrix is a square orthogonal matrix R (y = x R) that LM.Build multiplies into the weights of
// a rotated LM: fixed (FixedMatrix) or learned through a differentiable node (qat's Cayley
// rotations).
type Matrix interface {
	// Size is n for an n x n matrix.
	Size() int
	// Node returns R as a node of g with dtype dt; Build calls it once per graph and rotation.
	Node(g *G.ExprGraph, dt tensor.Dtype) (*G.Node, error)
	// Values returns the current R, n x n row-major.
	Values() []float64
}

// FixedMatrix is a constant Matrix.
type FixedMatrix struct {
	N int       // size
	M []float64 // N x N row-major
}

var matrixID atomic.Uint64

// Size implements Matrix.
func (f FixedMatrix) Size() int { return f.N }

// Values implements Matrix.
func (f FixedMatrix) Values() []float64 { return f.M }

// Node implements Matrix: a non-trainable input node holding a copy of M.
func (f FixedMatrix) Node(g *G.ExprGraph, dt tensor.Dtype) (*G.Node, error) {
	if f.N < 1 || len(f.M) != f.N*f.N {
		return nil, fmt.Errorf("graph: fixed rotation of size %d has %d values", f.N, len(f.M))
	}
	v := initTensor(dt, []int{f.N, f.N}, constInit(0))
	switch d := v.Data().(type) {
	case []float32:
		for i, x := range f.M {
			d[i] = float32(x)
		}
	case []float64:
		copy(d, f.M)
	}
	return G.NewMatrix(g, dt, G.WithShape(f.N, f.N), G.WithName(fmt.Sprintf("rotation#%d", matrixID.Add(1))), G.WithValue(v)), nil
}

// LMRotations are the rotations of a rotated LM (QuaRot, Ashkboos et al. 2024; SpinQuant, Liu
// et al. 2024). They spread activation outliers over all channels before quantization without
// changing the float model:
//
//   - Residual, R1 [Dim, Dim], rotates the residual stream: h -> h R1. The embedding becomes E R1,
//     every linear reading the stream (wq, wk, wv, w1, w3, head) W diag(g) R1 with the preceding
//     RMSNorm gain g folded in (RMSNorm without gain commutes with an orthogonal R1, with a
//     gain it does not), every linear writing it (wo, w2) R1^T W, and the norms' gains 1.
//   - Head[i], R2 [HeadDim, HeadDim], rotates block i's values and attention output head by
//     head: wv -> blockdiag(R2)^T wv, wo -> wo blockdiag(R2) (attention mixes positions, not
//     channels, so each head's output is rotated like its values).
//   - Hadamard rotates the input of every w2 online by the orthonormal Walsh-Hadamard transform
//     H/sqrt(Hidden) and w2 -> w2 H/sqrt(Hidden): the rotation the integer runtime runs
//     (qmodel's Hadamard op), since the SwiGLU product is not linear in the residual stream.
//
// LM.Build with LMOptions.Rotations multiplies the rotations into the weights inside the graph
// (so learned ones train, and quantizers see the rotated weights); LM.FoldRotations multiplies
// them into the stored weights once, after which the model is built without Rotations and
// computes the same function, only the online Walsh-Hadamard transforms remaining as nodes
// (LMConfig.OnlineHadamard).
type LMRotations struct {
	Residual Matrix   // R1, or nil
	Head     []Matrix // R2 per block (nil, or nil entries: none)
	Hadamard bool     // online Walsh-Hadamard at the input of w2
}

// check returns an error when the rotations do not fit the configuration c.
func (r *LMRotations) check(c LMConfig) error {
	if r.Residual != nil && r.Residual.Size() != c.Dim {
		return fmt.Errorf("graph: residual rotation of size %d for Dim %d", r.Residual.Size(), c.Dim)
	}
	if len(r.Head) > c.Layers {
		return fmt.Errorf("graph: %d head rotations for %d blocks", len(r.Head), c.Layers)
	}
	for i, h := range r.Head {
		if h != nil && h.Size() != c.Dim/c.Heads {
			return fmt.Errorf("graph: block %d head rotation of size %d for head dimension %d", i, h.Size(), c.Dim/c.Heads)
		}
	}
	if r.Hadamard {
		if c.OnlineHadamard {
			return fmt.Errorf("graph: the LM's w2 inputs are already rotated online (OnlineHadamard): the Hadamard rotation is folded")
		}
		if c.Hidden&(c.Hidden-1) != 0 {
			return fmt.Errorf("graph: online Hadamard needs a power-of-two Hidden, got %d", c.Hidden)
		}
	}
	return nil
}

func (r *LMRotations) head(i int) Matrix {
	if i < len(r.Head) {
		return r.Head[i]
	}
	return nil
}

// weight returns the node a linear or the embedding multiplies by: the rotated weight when the
// graph rotates it, else the parameter.
func (n *LMNet) weight(name string) *G.Node {
	if w, ok := n.rotated[name]; ok {
		return w
	}
	return n.Params[name]
}

// normGain returns the gain node of an RMSNorm layer: ones when the residual rotation has the
// gains folded into the following linears.
func (n *LMNet) normGain(layer string) *G.Node {
	if n.ones != nil {
		return n.ones
	}
	return n.Params[layer+".gain"]
}

// onlineHadamard reports whether the input of the linears reading site is rotated online.
func (n *LMNet) onlineHadamard(site string) bool {
	r := n.Opts.Rotations
	return (n.LM.Config.OnlineHadamard || (r != nil && r.Hadamard)) && isW2Input(site)
}

func isW2Input(site string) bool {
	return len(site) > len(".mlp.w2.in") && site[len(site)-len(".mlp.w2.in"):] == ".mlp.w2.in"
}

// rotateWeights builds the rotated weights of Opts.Rotations (see LMRotations) into n.rotated.
func (n *LMNet) rotateWeights() error {
	r := n.Opts.Rotations
	n.rotated = map[string]*G.Node{}
	if r == nil {
		return nil
	}
	c := n.LM.Config
	if err := r.check(c); err != nil {
		return err
	}
	dt := n.LM.Dtype
	cur := func(name string) *G.Node { return n.weight(name) }
	set := func(name string, w *G.Node, err error) error {
		if err != nil {
			return fmt.Errorf("rotating %s: %w", name, err)
		}
		n.rotated[name] = w
		return nil
	}
	var blocks []string
	for i := 0; i < c.Layers; i++ {
		blocks = append(blocks, fmt.Sprintf("blk%d", i))
	}
	if r.Residual != nil {
		r1, err := r.Residual.Node(n.G, dt)
		if err != nil {
			return err
		}
		r1t, err := G.Transpose(r1)
		if err != nil {
			return err
		}
		reader := func(name, gain string) error {
			w, err := ChanScale(cur(name), n.Params[gain], 1)
			if err != nil {
				return err
			}
			w, err = G.Mul(w, r1)
			return set(name, w, err)
		}
		writer := func(name string) error {
			w, err := G.Mul(r1t, cur(name))
			return set(name, w, err)
		}
		w, err := G.Mul(cur("tok_emb.weight"), r1)
		if err := set("tok_emb.weight", w, err); err != nil {
			return err
		}
		for _, b := range blocks {
			for _, l := range []string{"wq", "wk", "wv"} {
				if err := reader(b+".attn."+l+".weight", b+".attn_norm.gain"); err != nil {
					return err
				}
			}
			for _, l := range []string{"w1", "w3"} {
				if err := reader(b+".mlp."+l+".weight", b+".mlp_norm.gain"); err != nil {
					return err
				}
			}
			if err := writer(b + ".attn.wo.weight"); err != nil {
				return err
			}
			if err := writer(b + ".mlp.w2.weight"); err != nil {
				return err
			}
		}
		if err := reader("head.weight", "norm.gain"); err != nil {
			return err
		}
		ones := initTensor(dt, []int{c.Dim}, constInit(1))
		n.ones = G.NewVector(n.G, dt, G.WithShape(c.Dim), G.WithName(fmt.Sprintf("%s/ones#%d", n.LM.Name, matrixID.Add(1))), G.WithValue(ones))
	}
	D, H := c.Dim, c.Heads
	hd := D / H
	for i, b := range blocks {
		m := r.head(i)
		if m == nil {
			continue
		}
		r2, err := m.Node(n.G, dt)
		if err != nil {
			return err
		}
		// wv' = blockdiag(R2)^T wv = (reshape(wv^T, [D*H, hd]) R2 reshaped to [D, D])^T
		wv := b + ".attn.wv.weight"
		t, err := G.Transpose(cur(wv))
		if err == nil {
			t, err = G.Reshape(t, tensor.Shape{D * H, hd})
		}
		if err == nil {
			t, err = G.Mul(t, r2)
		}
		if err == nil {
			t, err = G.Reshape(t, tensor.Shape{D, D})
		}
		if err == nil {
			t, err = G.Transpose(t)
		}
		if err := set(wv, t, err); err != nil {
			return err
		}
		// wo' = wo blockdiag(R2): each row's head blocks times R2
		wo := b + ".attn.wo.weight"
		t, err = G.Reshape(cur(wo), tensor.Shape{D * H, hd})
		if err == nil {
			t, err = G.Mul(t, r2)
		}
		if err == nil {
			t, err = G.Reshape(t, tensor.Shape{D, D})
		}
		if err := set(wo, t, err); err != nil {
			return err
		}
	}
	if r.Hadamard {
		for _, b := range blocks {
			w2 := b + ".mlp.w2.weight"
			w, err := fakequant.WalshHadamard(cur(w2)) // rows times H/sqrt(Hidden)
			if err := set(w2, w, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// FoldRotations multiplies the rotations r (see LMRotations) into the stored weights: with a
// residual rotation the norm gains are first folded into the linears that read them (and set to
// 1), then E R1, W R1 for the readers and R1^T W for the writers; the head rotations into wv
// and wo; the Hadamard rotation into w2, and LMConfig.OnlineHadamard is set so that Build rotates
// w2's input online. The model built without Rotations afterwards computes what the model built
// with Rotations r computed before (the float model is unchanged up to rounding), and holds
// plain weights for export. The matrices are read once (Matrix.Values) and should be
// orthogonal. An error leaves the model unchanged.
func (m *LM) FoldRotations(r LMRotations) error {
	c := m.Config
	if err := r.check(c); err != nil {
		return err
	}
	vals := map[string][]float64{}
	for _, p := range m.params {
		v := paramFloat64s(p)
		if v == nil {
			return fmt.Errorf("graph: FoldRotations: parameter %s has dtype %v", p.Name, p.Value.Dtype())
		}
		vals[p.Name] = v
	}
	D, V, Hd := c.Dim, c.Vocab, c.Hidden
	hd := D / c.Heads
	var blocks []string
	for i := 0; i < c.Layers; i++ {
		blocks = append(blocks, fmt.Sprintf("blk%d", i))
	}
	if r.Residual != nil {
		r1 := r.Residual.Values()
		if len(r1) != D*D {
			return fmt.Errorf("graph: FoldRotations: residual rotation has %d values for %dx%d", len(r1), D, D)
		}
		r1t := transposed(r1, D, D)
		reader := func(name, gain string, out int) {
			w, g := vals[name], vals[gain]
			for i := range w {
				w[i] *= g[i%D]
			}
			vals[name] = matMul(w, r1, out, D, D)
		}
		vals["tok_emb.weight"] = matMul(vals["tok_emb.weight"], r1, V, D, D)
		for _, b := range blocks {
			for _, l := range []string{"wq", "wk", "wv"} {
				reader(b+".attn."+l+".weight", b+".attn_norm.gain", D)
			}
			for _, l := range []string{"w1", "w3"} {
				reader(b+".mlp."+l+".weight", b+".mlp_norm.gain", Hd)
			}
			vals[b+".attn.wo.weight"] = matMul(r1t, vals[b+".attn.wo.weight"], D, D, D)
			vals[b+".mlp.w2.weight"] = matMul(r1t, vals[b+".mlp.w2.weight"], D, D, Hd)
		}
		reader("head.weight", "norm.gain", V)
		for _, g := range append(blocksGains(blocks), "norm.gain") {
			for i := range vals[g] {
				vals[g][i] = 1
			}
		}
	}
	for i, b := range blocks {
		h := r.head(i)
		if h == nil {
			continue
		}
		r2 := h.Values()
		if len(r2) != hd*hd {
			return fmt.Errorf("graph: FoldRotations: block %d head rotation has %d values for %dx%d", i, len(r2), hd, hd)
		}
		// wv rows of head k: R2^T wv_k; wo columns of head k: wo_k R2 (as rows of hd values)
		r2t := transposed(r2, hd, hd)
		wv := vals[b+".attn.wv.weight"]
		for k := 0; k < c.Heads; k++ {
			blk := wv[k*hd*D : (k+1)*hd*D]
			copy(blk, matMul(r2t, blk, hd, hd, D))
		}
		wo := vals[b+".attn.wo.weight"]
		vals[b+".attn.wo.weight"] = matMul(wo, r2, D*c.Heads, hd, hd)
	}
	if r.Hadamard {
		norm := 1 / math.Sqrt(float64(Hd))
		for _, b := range blocks {
			w := vals[b+".mlp.w2.weight"]
			for i := 0; i < len(w); i += Hd {
				row := w[i : i+Hd]
				fakequant.FWHT(row)
				for j := range row {
					row[j] *= norm
				}
			}
		}
	}
	for _, p := range m.params {
		setParamFloat64s(p, vals[p.Name])
	}
	if r.Hadamard {
		m.Config.OnlineHadamard = true
	}
	return nil
}

func blocksGains(blocks []string) []string {
	var g []string
	for _, b := range blocks {
		g = append(g, b+".attn_norm.gain", b+".mlp_norm.gain")
	}
	return g
}

// matMul returns a [r, k] times b [k, c], row-major.
func matMul(a, b []float64, r, k, c int) []float64 {
	out := make([]float64, r*c)
	for i := 0; i < r; i++ {
		o := out[i*c : (i+1)*c]
		for p, x := range a[i*k : (i+1)*k] {
			if x == 0 {
				continue
			}
			for j, y := range b[p*c : (p+1)*c] {
				o[j] += x * y
			}
		}
	}
	return out
}

func transposed(a []float64, r, c int) []float64 {
	t := make([]float64, len(a))
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			t[j*r+i] = a[i*c+j]
		}
	}
	return t
}

// paramFloat64s returns a float64 copy of a float32 or float64 parameter (nil for other dtypes).
func paramFloat64s(p *Param) []float64 {
	switch d := p.Value.Data().(type) {
	case []float32:
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x)
		}
		return v
	case []float64:
		return append([]float64(nil), d...)
	}
	return nil
}

// setParamFloat64s stores v (of the parameter's size) into a float32 or float64 parameter.
func setParamFloat64s(p *Param, v []float64) {
	switch d := p.Value.Data().(type) {
	case []float32:
		for i, x := range v {
			d[i] = float32(x)
		}
	case []float64:
		copy(d, v)
	}
}
