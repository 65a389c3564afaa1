package qat

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/quant"
	"gonum.org/v1/gonum/mat"
)

// GPTQConfig selects how GPTQ (and RoundToNearest, its baseline) quantizes one linear weight.
//
// The grid is the project's weight contract (package quant): symmetric, zero point 0, narrow range
// [-(2^(b-1)-1), 2^(b-1)-1], scale quant.SymmetricParams(min, max) of the channel or group, levels
// clamp(quant.Round(w/scale)) — so the fake-quant forward pass and the exporter reproduce GPTQ's
// levels exactly from the returned scales.
type GPTQConfig struct {
	// Bits is the weight bit width, 2..8.
	Bits int
	// GroupSize is the number of consecutive inputs that share a scale (per group along the input
	// dimension, llama.cpp block order); 0 means one scale per output channel. It must divide In.
	GroupSize int
	// PercDamp is the dampening added to the Hessian's diagonal as a fraction of its mean
	// diagonal (lambda = PercDamp * mean(diag H)); 0 means the reference default 0.01. It must be
	// finite and >= 0.
	PercDamp float64
	// Undamped switches the dampening off (lambda = 0): a singular Hessian is then an error.
	Undamped bool
	// BlockSize is the width of the lazy batch (columns updated together before the rest of the
	// matrix receives their accumulated error); 0 means 128. It is rounded down to a multiple of
	// GroupSize (and up to GroupSize when smaller), so that a group never straddles two blocks.
	BlockSize int
	// ActOrder processes the input columns in order of decreasing Hessian diagonal (the
	// reference's "act-order" / desc_act). Group scales are then fixed up front from the original
	// weights of each contiguous group (the reference's static_groups=true): groups determined in
	// the permuted order (static_groups=false) would scatter each group over the input dimension
	// and need a per-column group index, which the project's per-group format (contiguous groups,
	// as fakequant.PerGroup and the exporter use) cannot express.
	ActOrder bool
	// GGMLQ4_0 quantizes on llama.cpp's Q4_0 grid instead of the project's, for a GGUF export
	// (gguf/llama) that adds no rounding of its own: Bits must be 4 and GroupSize 32 (one Q4_0
	// block). A block's scale is d = fp16(m/-8), m its value of largest magnitude with its sign
	// (llama.cpp's rule, taken from the current weights when the block's first column is reached,
	// or from the original weights with ActOrder); the levels are -8..7, rounded to nearest, and
	// the element that gave m is pinned to level -8, so that llama.cpp's quantizer (and
	// gguf.Quantize) derives the same d and levels again from the dequantized weights. Scales
	// are then signed (d < 0 when m > 0).
	GGMLQ4_0 bool
}

func (c GPTQConfig) withDefaults(in int) (GPTQConfig, error) {
	if !quant.ValidBits(c.Bits) {
		return c, fmt.Errorf("qat: GPTQ: %d bits (want 2..8)", c.Bits)
	}
	if c.GroupSize < 0 || (c.GroupSize > 0 && in%c.GroupSize != 0) {
		return c, fmt.Errorf("qat: GPTQ: group size %d does not divide the input dimension %d (0 means per output channel)", c.GroupSize, in)
	}
	if c.GGMLQ4_0 && (c.Bits != 4 || c.GroupSize != 32) {
		return c, fmt.Errorf("qat: GPTQ: llama.cpp's Q4_0 grid needs 4 bits and groups of 32, got %d bits and groups of %d", c.Bits, c.GroupSize)
	}
	if c.PercDamp < 0 || math.IsNaN(c.PercDamp) || math.IsInf(c.PercDamp, 0) {
		return c, fmt.Errorf("qat: GPTQ: dampening %v (want finite and >= 0)", c.PercDamp)
	}
	if c.BlockSize < 0 {
		return c, fmt.Errorf("qat: GPTQ: block size %d (want >= 0; 0 means 128)", c.BlockSize)
	}
	switch {
	case c.Undamped:
		c.PercDamp = 0
	case c.PercDamp == 0:
		c.PercDamp = 0.01
	}
	if c.BlockSize == 0 {
		c.BlockSize = 128
	}
	if g := c.GroupSize; g > 0 {
		c.BlockSize = max(g, c.BlockSize/g*g)
	}
	return c, nil
}

// QuantizedWeight is a weight matrix [Out, In] quantized on the project's grid.
type QuantizedWeight struct {
	Out, In int
	// GroupSize is the group size along In (0: per output channel).
	GroupSize int
	// Bits is the bit width.
	Bits int
	// Levels are the integer weights q, row-major [Out, In], in [-(2^(b-1)-1), 2^(b-1)-1].
	Levels []int8
	// Scales are the per-slice scales in fakequant's layout order: [Out] per channel, or
	// [Out, In/GroupSize] row-major per group (fakequant.PerGroup on axis 1). Zero points are 0.
	Scales []float32
	// Weights are the dequantized weights scale*q (float64 of the float32 product), row-major.
	Weights []float64
	// GGMLQ4_0 reports llama.cpp's Q4_0 grid (GPTQConfig.GGMLQ4_0): levels -8..7, signed scales.
	GGMLQ4_0 bool
	// anchor is, per slice on the Q4_0 grid, the column pinned to level -8 (-1: none).
	anchor []int
	// Error is GPTQ's accumulated proxy loss sum over columns of |w - q|^2 / (2 [H_F^-1]_qq)
	// (Frantar et al., eq. 2 summed; 0 for RoundToNearest).
	Error float64
}

// Params returns the scales as quant.Params (zero point 0), ready for fakequant.Quantizer.SetParams
// on a symmetric narrow weight quantizer of the same granularity.
func (q *QuantizedWeight) Params() []quant.Params {
	ps := make([]quant.Params, len(q.Scales))
	for i, s := range q.Scales {
		ps[i] = quant.Params{Scale: s}
	}
	return ps
}

// slice returns the scale index of element (row r, column c).
func (q *QuantizedWeight) slice(r, c int) int {
	if q.GroupSize == 0 {
		return r
	}
	return r*(q.In/q.GroupSize) + c/q.GroupSize
}

func newQuantizedWeight(out, in int, c GPTQConfig) *QuantizedWeight {
	ns := out
	if c.GroupSize > 0 {
		ns = out * (in / c.GroupSize)
	}
	q := &QuantizedWeight{Out: out, In: in, GroupSize: c.GroupSize, Bits: c.Bits, GGMLQ4_0: c.GGMLQ4_0,
		Levels: make([]int8, out*in), Scales: make([]float32, ns), Weights: make([]float64, out*in)}
	if c.GGMLQ4_0 {
		q.anchor = make([]int, ns)
	}
	return q
}

// setScale sets the scale of slice k from the values v (one slice's current weights; v[0] is
// the weight of column col0, the following ones of the next columns).
func (q *QuantizedWeight) setScale(k int, v []float64, col0 int) error {
	if q.GGMLQ4_0 {
		var amax float64
		at := -1
		for j, x := range v {
			if math.Abs(x) > amax {
				amax, at = math.Abs(x), j
			}
		}
		q.Scales[k], q.anchor[k] = 0, -1
		if at >= 0 {
			q.Scales[k] = gguf.F16ToFloat32(gguf.F16FromFloat32(float32(v[at]) / -8))
			if q.Scales[k] != 0 {
				q.anchor[k] = col0 + at
			}
		}
		return nil
	}
	lo, hi := 0.0, 0.0
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	p, err := quant.SymmetricParams(lo, hi, quant.NarrowSigned(q.Bits))
	if err != nil {
		return err
	}
	q.Scales[k] = p.Scale
	return nil
}

// put quantizes w at (r, c) with the scale of its slice, stores level and dequantized value, and
// returns the dequantized value.
func (q *QuantizedWeight) put(r, c int, w float64) float64 {
	k := q.slice(r, c)
	s := q.Scales[k]
	var l int32
	switch {
	case !q.GGMLQ4_0:
		rng := quant.NarrowSigned(q.Bits)
		l = quant.QuantizeValue(w, float64(s), 0, rng.Min, rng.Max)
	case q.anchor[k] == c:
		l = -8
	case s != 0:
		l = int32(min(max(math.Round(w/float64(s)), -8), 7))
	}
	v := float64(float32(l) * s)
	q.Levels[r*q.In+c] = int8(l)
	q.Weights[r*q.In+c] = v
	return v
}

func checkWeight(w []float64, out, in int) error {
	if out < 1 || in < 1 || len(w) != out*in {
		return fmt.Errorf("qat: weight of %d values for [%d, %d]", len(w), out, in)
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: weight element %d is %v", ErrNonFinite, i, v)
		}
	}
	return nil
}

// RoundToNearest quantizes w [Out, In] (row-major, y = x W^T) to the nearest level of the grid
// GPTQ uses (scales from each channel's or group's min/max): the round-to-nearest (RTN) baseline.
// c.PercDamp, BlockSize and ActOrder are ignored.
func RoundToNearest(w []float64, out, in int, c GPTQConfig) (*QuantizedWeight, error) {
	if err := checkWeight(w, out, in); err != nil {
		return nil, err
	}
	c, err := c.withDefaults(in)
	if err != nil {
		return nil, err
	}
	q := newQuantizedWeight(out, in, c)
	g := c.GroupSize
	if g == 0 {
		g = in
	}
	for r := 0; r < out; r++ {
		for c0 := 0; c0 < in; c0 += g {
			if err := q.setScale(q.slice(r, c0), w[r*in+c0:r*in+c0+g], c0); err != nil {
				return nil, err
			}
			for j := c0; j < c0+g; j++ {
				q.put(r, j, w[r*in+j])
			}
		}
	}
	return q, nil
}

// GPTQ quantizes the weight w [Out, In] (row-major, y = x W^T) of one linear layer given the
// Hessian h [In, In] (row-major, symmetric) of its layer-wise reconstruction loss
// ||X W^T - X Q^T||^2, h = 2 X^T X over calibration inputs X [N, In] (see LinearInputStats),
// with GPTQ (Frantar, Ashkboos, Hoefler and Alistarh 2022, "GPTQ: Accurate Post-Training
// Quantization for Generative Pre-trained Transformers", arXiv 2210.17323, Algorithm 1):
//
//   - inputs that were always zero (H_jj = 0) get H_jj = 1 and their weights set to 0;
//   - dampening: H += lambda I with lambda = PercDamp * mean(diag H);
//   - U = upper Cholesky factor of H^-1 (H^-1 = U^T U), whose row q holds the inverse Hessian of
//     the not yet quantized columns F = {q, q+1, ...}: U_qj = [H_F^-1]_qj / sqrt([H_F^-1]_qq);
//   - columns are quantized one at a time (in order, or by decreasing H_jj with ActOrder), each
//     quantization error fed back to the remaining columns:
//     err = (w_q - quant(w_q)) / U_qq,  w_j -= err * U_qj for j > q  (the OBS update
//     delta_F = -(w_q - quant(w_q)) / [H_F^-1]_qq * (H_F^-1)_{:,q});
//   - lazy batches: the update is applied at once inside a block of BlockSize columns and to the
//     columns after the block as one matrix product W[:, i2:] -= Err U[i1:i2, i2:];
//   - group scales are set from the current (error-updated) weights of a group when its first
//     column is reached (without ActOrder), or up front (ActOrder, see GPTQConfig.ActOrder);
//     per-channel scales are set from the original weights.
//
// It returns an error for a wrong shape, non-finite values, bad bits or group size, or an H that
// is not positive definite after dampening (Cholesky fails: an indefinite H, or a singular H with
// PercDamp's lambda 0). w and h are not modified.
func GPTQ(w []float64, out, in int, h []float64, c GPTQConfig) (*QuantizedWeight, error) {
	if err := checkWeight(w, out, in); err != nil {
		return nil, err
	}
	c, err := c.withDefaults(in)
	if err != nil {
		return nil, err
	}
	H, W, wz, perm, err := gptqPrepare(w, out, in, h, c)
	if err != nil {
		return nil, err
	}
	var chol mat.Cholesky
	if !chol.Factorize(H) {
		return nil, errors.New("qat: GPTQ: the dampened Hessian is not positive definite (check the calibration statistics or raise PercDamp)")
	}
	var hinv mat.SymDense
	if err := chol.InverseTo(&hinv); err != nil {
		return nil, fmt.Errorf("qat: GPTQ: inverting the Hessian: %w", err)
	}
	var chol2 mat.Cholesky
	if !chol2.Factorize(&hinv) {
		return nil, errors.New("qat: GPTQ: the inverse Hessian is not positive definite (ill-conditioned Hessian: raise PercDamp)")
	}
	var ut mat.TriDense
	chol2.UTo(&ut)
	U := mat.DenseCopyOf(&ut) // [In, In] upper triangular, H^-1 = U^T U

	q := newQuantizedWeight(out, in, c)
	if err := gptqStaticScales(q, wz, c); err != nil {
		return nil, err
	}
	Wm := mat.NewDense(out, in, W)
	B := c.BlockSize
	for i1 := 0; i1 < in; i1 += B {
		i2 := min(i1+B, in)
		cnt := i2 - i1
		errs := mat.NewDense(out, cnt, nil)
		for i := i1; i < i2; i++ {
			orig := perm[i] // original column index of permuted column i
			if c.GroupSize > 0 && !c.ActOrder && i%c.GroupSize == 0 {
				// dynamic group: scale from the current weights of columns i .. i+g-1 (inside this block)
				for r := 0; r < out; r++ {
					if err := q.setScale(q.slice(r, orig), W[r*in+i:r*in+i+c.GroupSize], orig); err != nil {
						return nil, err
					}
				}
			}
			d := U.At(i, i)
			urow := U.RawRowView(i)
			for r := 0; r < out; r++ {
				row := W[r*in : (r+1)*in]
				wv := row[i]
				e := (wv - q.put(r, orig, wv)) / d
				q.Error += e * e / 2
				for j := i + 1; j < i2; j++ {
					row[j] -= e * urow[j]
				}
				errs.Set(r, i-i1, e)
			}
		}
		if i2 < in {
			var upd mat.Dense
			upd.Mul(errs, U.Slice(i1, i2, i2, in))
			rest := Wm.Slice(0, out, i2, in).(*mat.Dense)
			rest.Sub(rest, &upd)
		}
	}
	return q, nil
}

// gptqPrepare validates h, copies it and w, handles dead inputs, applies the act-order
// permutation and the dampening. It returns the dampened permuted H, the permuted working copy of
// W, the unpermuted copy wz of W with dead inputs zeroed, and perm (permuted column i is original
// column perm[i]).
func gptqPrepare(w []float64, out, in int, h []float64, c GPTQConfig) (H *mat.SymDense, W, wz []float64, perm []int, err error) {
	if len(h) != in*in {
		return nil, nil, nil, nil, fmt.Errorf("qat: GPTQ: Hessian of %d values for an input dimension of %d (want %d)", len(h), in, in*in)
	}
	for i, v := range h {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, nil, nil, nil, fmt.Errorf("%w: GPTQ: Hessian element (%d, %d) is %v", ErrNonFinite, i/in, i%in, v)
		}
	}
	for i := 0; i < in; i++ {
		for j := 0; j < i; j++ {
			if a, b := h[i*in+j], h[j*in+i]; math.Abs(a-b) > 1e-9*(math.Abs(a)+math.Abs(b)) {
				return nil, nil, nil, nil, fmt.Errorf("qat: GPTQ: Hessian is not symmetric at (%d, %d): %v vs %v", i, j, a, b)
			}
		}
	}
	diag := make([]float64, in)
	for j := range diag {
		diag[j] = h[j*in+j]
		if diag[j] < 0 {
			return nil, nil, nil, nil, fmt.Errorf("qat: GPTQ: Hessian diagonal %d is negative (%v): not a Gram matrix", j, diag[j])
		}
	}
	dead := make([]bool, in)
	for j := range dead {
		if diag[j] == 0 {
			dead[j], diag[j] = true, 1
		}
	}
	perm = make([]int, in)
	for j := range perm {
		perm[j] = j
	}
	if c.ActOrder {
		slices.SortStableFunc(perm, func(a, b int) int {
			switch {
			case diag[a] > diag[b]:
				return -1
			case diag[a] < diag[b]:
				return 1
			}
			return 0
		})
	}
	var mean float64
	for _, v := range diag {
		mean += v
	}
	damp := c.PercDamp * mean / float64(in)
	H = mat.NewSymDense(in, nil)
	for i := 0; i < in; i++ {
		for j := i; j < in; j++ {
			a, b := perm[i], perm[j]
			v := h[a*in+b]
			if a == b {
				v = diag[a] + damp
			} else if dead[a] || dead[b] {
				v = 0 // a dead input is zero in every sample: its cross terms are 0 already
			}
			H.SetSym(i, j, v)
		}
	}
	W, wz = make([]float64, out*in), make([]float64, out*in)
	for r := 0; r < out; r++ {
		for i, j := range perm {
			if !dead[j] {
				W[r*in+i] = w[r*in+j]
				wz[r*in+j] = w[r*in+j]
			}
		}
	}
	return H, W, wz, perm, nil
}

// gptqStaticScales sets the scales that are fixed before the column loop: per output channel
// (from the original weights) and, with ActOrder, per contiguous group of the original weights.
func gptqStaticScales(q *QuantizedWeight, w []float64, c GPTQConfig) error {
	out, in := q.Out, q.In
	switch {
	case c.GroupSize == 0:
		for r := 0; r < out; r++ {
			if err := q.setScale(r, w[r*in:(r+1)*in], 0); err != nil {
				return err
			}
		}
	case c.ActOrder:
		for r := 0; r < out; r++ {
			for c0 := 0; c0 < in; c0 += c.GroupSize {
				if err := q.setScale(q.slice(r, c0), w[r*in+c0:r*in+c0+c.GroupSize], c0); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
