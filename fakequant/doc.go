// Package fakequant provides the Gorgonia fake-quantization ops of qatgo: a fake-quantize node with
// straight-through, LSQ/LSQ+ and PACT gradients, observers that set quantization parameters from
// data (fused with the fake-quantize pass), and orthogonal rotations (random Hadamard, learnable
// Cayley-parametrised R) for QuaRot/SpinQuant-style training.
//
// # Forward: the integer contract
//
// Every fake-quantize node computes, element by element and in the float type F of the graph
// (float32 or float64),
//
//	q     = clamp(quant.Round(x / s) + z, qmin, qmax)     // quant.QuantizeValue
//	x_hat = F(q - z) * s                                   // quant.DequantizeValue
//
// by calling package quant, so the exporter (which calls the same functions) reproduces the
// training forward bit for bit. The scale s used by the forward is always a float32 value
// (converted to F), floored at quant.MinScale; the zero point z is an int32 in [qmin, qmax].
// Quantizer.Params returns exactly the (float32 scale, int32 zero point) pairs the forward uses
// with the current parameter values. (A float64 graph divides in float64; an exporter that
// quantizes in float32 matches it bit for bit only on float32 graphs.)
//
// # Configuration
//
// A Config chooses the bit width (2..8), the Scheme (SymmetricNarrow for weights:
// [-(2^(b-1)-1), 2^(b-1)-1] with z = 0; AsymmetricSigned or AsymmetricUnsigned for activations), the
// granularity (PerTensor, PerChannel along Axis, PerGroup of GroupSize consecutive elements along
// Axis), the Method that produces s and z (LSQ learned, Observed by an observer, PACT learned
// clip) and the input gradient (ClippedSTE or PlainSTE). An asymmetric LSQ quantizer without
// LearnOffset keeps a fixed zero point: 0 for AsymmetricSigned, qmin (= 0) for AsymmetricUnsigned.
// PACT ignores Scheme: its range is always [0, 2^b-1] with z = 0.
//
// Granularity fixes the number K of (scale, zero point) slices and their order. For an input of
// shape d, slices are laid out row-major over the shape d' where
//
//	PerTensor:  K = 1
//	PerChannel: d' = (d[Axis])                          K = d[Axis]
//	PerGroup:   d' = d with d'[Axis] = d[Axis]/GroupSize K = prod(d')
//
// so a [out, in] weight with PerGroup along Axis 1 has slice o*(in/G) + i/G for element (o, i),
// the llama.cpp block order. Parameter nodes are vectors of length K.
//
// # Building nodes
//
//	q, err := fakequant.New(g, x, fakequant.Config{Name: "fc1.w", Bits: 4,
//		Scheme: fakequant.SymmetricNarrow, Granularity: fakequant.PerChannel, Axis: 0,
//		Method: fakequant.LSQ})
//	y := q.Out            // use in place of x
//	learn := q.Learnables() // add to the solver's list: [q.LogScale] (+ q.Offset, q.Alpha)
//	params, _ := q.Params() // export reads these: []quant.Params, len K
//
// New returns a *Quantizer that owns the node(s) and the state export needs: Out, the learnable
// parameter nodes, Range(), Config(), Params(). Names of the created nodes derive from
// Config.Name, which must be unique in the graph.
//
// # Gradients
//
// Let v = x/s, r = quant.Round(v), u = r + z. An element is inside when qmin <= u <= qmax, clipped
// low when u < qmin and clipped high when u > qmax (the same test the forward's clamp applies).
//
//   - Input (ClippedSTE): dL/dx = dL/dx_hat inside, 0 when clipped. PlainSTE passes every element.
//   - Scale (LSQ, Esser et al. 2020, "Learned Step Size Quantization"):
//     dx_hat/ds = r - v inside, qmin - z clipped low, qmax - z clipped high, and the scale gradient
//     is multiplied by g = 1/sqrt(N*Qp), N the number of elements of the input tensor sharing the
//     scale (batch included for activations, as in PyTorch's learnable fake-quantize; the LSQ paper
//     counts features per sample) and Qp = qmax for SymmetricNarrow, qmax - qmin for the asymmetric
//     schemes (Config.Qp). NoGradScale sets g = 1.
//   - Offset (LSQ+, Bhalgat et al. 2020): the learnable offset is a real-valued zero point z_r (the
//     LSQ+ offset beta = -s*z_r); the forward uses z = clamp(quant.Round(z_r), qmin, qmax), and
//     dx_hat/dz_r = 0 inside and -s when clipped, times the same g.
//   - PACT (Choi et al. 2018): y = fake-quantize(clip(x, 0, alpha)) with the unsigned range
//     [0, 2^b-1], z = 0 and s = alpha/(2^b-1); dy/dalpha = 1 where x >= alpha, 0 elsewhere; dy/dx = 1
//     where 0 <= x < alpha (ClippedSTE).
//
// These are the derivatives of the documented surrogate in which the rounding residual r - v is
// held constant: x_hat = s*(clamp(v + (r-v) + z_r, qmin, qmax) - z_r), and for PACT
// y = clip(x, 0, alpha). The tests check every gradient against central differences of these
// surrogates.
//
// # Positive scales
//
// LSQ scales are learned in log space: the learnable node is LogScale = log(s) and the forward uses
// s = max(float32(exp(LogScale)), quant.MinScale). Any optimizer step therefore keeps s > 0; the
// gradient reaching LogScale is s * dL/ds (chain rule). PACT's alpha is learned directly (as in the
// paper) and floored in the op at (2^b-1)*quant.MinScale, so its scale is never below MinScale.
//
// # Observers and the fused observe + fake-quantize op
//
// With Method Observed, the node's Do updates the observer from the batch (running min/max or an
// exponential moving average, per tensor or per slice) and fake-quantizes with the updated
// parameters inside one op: a read-only min/max sweep, then the sweep that writes the output, no
// separate graph nodes and no allocation per step after the first (the op owns its buffers and
// implements UsePreallocDo). With Config.SinglePass the two sweeps become one: the batch is
// quantized with the parameters from before it while its min/max is folded into the state.
// Freeze stops the updates (the parameters then stay fixed, as at evaluation or after
// calibration), Unfreeze resumes them. SetEnabled(false) makes the node an identity (pass-through)
// for schedules that switch fake quantization on late.
//
// Calibration observers for post-training statistics work on plain slices: MinMaxObserver (with
// Momentum > 0 an EMA observer), PercentileObserver and MSEObserver; LSQInitScale gives the LSQ
// initialisation s = 2*mean|v|/sqrt(Qp).
//
// # Non-finite input
//
// A NaN or Inf in the input of a fake-quantize node makes its Do return an error (wrapping
// ErrNonFinite and quant.ErrNonFinite) that names the node and the first offending element, so
// TapeMachine.RunAll fails loudly instead of training on garbage (its error keeps that text, though
// Gorgonia's wrapping drops the error chain); the observer state is left as it was. A NaN or Inf learned parameter (log-scale, offset, alpha) is an error of the same kind. A
// disabled node (SetEnabled(false)) passes its input through unchecked.
//
// # Buffers and speed
//
// Ops own their output buffers and reuse them every step: the value bound to Out (and to gradient
// nodes) is overwritten by the next run of the machine. Copy it if you need it later. The forward
// also keeps, per element, the rounding residual r - v or a clip code (one extra tensor of the
// input's size and type), so the backward needs no division or rounding; if the backward sees an
// input or parameters other than the forward's, it recomputes them. Tensors of 64K elements or
// more are processed in two halves on two goroutines (a package worker), without allocating.
//
// On amd64 with AVX2 (not with the purego build tag) float32 element loops run as vector kernels:
// the forward, the observer's min/max sweep and the backward's input gradient are bit-identical to
// the portable Go loops. The LSQ scale/offset gradient sums add the same float64 terms but in 8
// per-lane partial sums folded at the end, so they can differ from the Go loop's (already
// two-accumulator) order in the last float64 bits.
//
// # Rotations
//
// Hadamard(x, seed) applies y = x R along the last axis with R = D H_n / sqrt(n) (n a power of two,
// H_n the Sylvester Hadamard matrix, D a fixed random +-1 diagonal from the seed) through the fast
// Walsh-Hadamard transform, O(n log n) per row, and its exact transpose as gradient. NewRotation
// holds a learnable orthogonal n x n matrix R (a node) used as y = x R (a Gorgonia matmul);
// CayleySGD updates it with the Cayley transform R <- (I + lr/2 W)^-1 (I - lr/2 W) R,
// W = G R^T - R G^T skew-symmetric (Li et al. 2020, as in SpinQuant), which keeps R orthogonal to
// rounding error. Hand R to CayleySGD, not to an ordinary solver.
//
// Cayley(A) parameterises a rotation by an unconstrained square matrix instead:
// Q = (I + S)^-1 (I - S) with S = (A - A^T)/2 is orthogonal for every A and differentiable, so A
// trains with any optimizer (qat's learned rotations). WalshHadamard(x) is the orthonormal
// H_n / sqrt(n) without random signs, the online transform the integer runtime runs;
// RandomHadamardMatrix(n, seed) is the matrix Hadamard(x, seed) multiplies by.
package fakequant
