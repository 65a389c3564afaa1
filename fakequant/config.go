package fakequant

import (
	"errors"
	"fmt"

	"github.com/qatgo/qatgo/quant"
)

// Scheme selects the integer range and whether a zero point is used.
type Scheme int

const (
	// SymmetricNarrow is the weight scheme: signed narrow range [-(2^(b-1)-1), 2^(b-1)-1], zero point 0.
	SymmetricNarrow Scheme = iota
	// AsymmetricSigned is the activation scheme: [-2^(b-1), 2^(b-1)-1] with a zero point.
	AsymmetricSigned
	// AsymmetricUnsigned is [0, 2^b-1] with a zero point.
	AsymmetricUnsigned
)

// String names the scheme.
func (s Scheme) String() string {
	switch s {
	case SymmetricNarrow:
		return "symmetric-narrow"
	case AsymmetricSigned:
		return "asymmetric-signed"
	case AsymmetricUnsigned:
		return "asymmetric-unsigned"
	}
	return fmt.Sprintf("Scheme(%d)", int(s))
}

// Granularity says which elements share one (scale, zero point) pair.
type Granularity int

const (
	// PerTensor uses one pair for the whole tensor.
	PerTensor Granularity = iota
	// PerChannel uses one pair per index along Config.Axis.
	PerChannel
	// PerGroup uses one pair per GroupSize consecutive elements along Config.Axis (and per index of
	// every other axis).
	PerGroup
)

// String names the granularity.
func (g Granularity) String() string {
	switch g {
	case PerTensor:
		return "per-tensor"
	case PerChannel:
		return "per-channel"
	case PerGroup:
		return "per-group"
	}
	return fmt.Sprintf("Granularity(%d)", int(g))
}

// Method says where the scale and zero point come from.
type Method int

const (
	// LSQ learns log(scale) (and with LearnOffset a real-valued zero point, LSQ+) by gradient descent.
	LSQ Method = iota
	// Observed takes scale and zero point from a running min/max or EMA observer updated by the
	// node itself (fused observe + fake-quantize) until frozen.
	Observed
	// PACT learns a clipping level alpha; the range is unsigned [0, 2^b-1] with zero point 0 and
	// scale alpha/(2^b-1). Meant for ReLU activations.
	PACT
)

// String names the method.
func (m Method) String() string {
	switch m {
	case LSQ:
		return "lsq"
	case Observed:
		return "observed"
	case PACT:
		return "pact"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// GradMode selects the input gradient.
type GradMode int

const (
	// ClippedSTE passes the gradient where the element is not clipped and zeroes it where it is.
	ClippedSTE GradMode = iota
	// PlainSTE passes the gradient everywhere.
	PlainSTE
)

// String names the gradient mode.
func (m GradMode) String() string {
	if m == PlainSTE {
		return "plain-ste"
	}
	if m == ClippedSTE {
		return "clipped-ste"
	}
	return fmt.Sprintf("GradMode(%d)", int(m))
}

// Config describes one fake-quantize node. The zero value is not valid: Name and Bits are required.
type Config struct {
	// Name prefixes the names of the nodes the quantizer creates; it must be unique in the graph.
	Name string
	// Bits is the bit width, 2..8.
	Bits int
	// Scheme selects the range (ignored by PACT, which is always unsigned with zero point 0).
	Scheme Scheme
	// Granularity, Axis and GroupSize select the slices that share a scale (see the package doc).
	Granularity Granularity
	// Axis is the channel axis (PerChannel) or the grouped axis (PerGroup). Negative counts from the end.
	Axis int
	// GroupSize is the group length along Axis for PerGroup; it must divide the axis length.
	GroupSize int
	// Method selects LSQ, Observed or PACT.
	Method Method
	// Grad selects the input gradient.
	Grad GradMode
	// LearnOffset adds a learnable zero point (LSQ+). Only with LSQ and an asymmetric scheme.
	LearnOffset bool
	// Momentum is the EMA factor of the Observed method: 0 keeps the running min/max over all batches,
	// m in (0, 1] updates min <- (1-m)*min + m*batchMin (PyTorch's averaging constant, 0.01 typical).
	Momentum float64
	// SinglePass makes an Observed node quantize each batch with the parameters from before the
	// batch while folding the batch's min/max into the observer in the same sweep: one pass over the
	// tensor instead of two, with parameters one batch behind (immaterial for an EMA with a small
	// Momentum; not meant for Momentum 1). The first batch still takes two passes.
	SinglePass bool
	// InitScale is the initial scale of LSQ (per slice, before the first InitLSQ), and the initial
	// alpha/(2^b-1) of PACT. Zero means: LSQ initialises from the input node's value when it has one
	// (weights), else 1; PACT starts at alpha = 6 (ReLU6).
	InitScale float64
	// NoGradScale disables LSQ's gradient scale g = 1/sqrt(N*Qp) (g = 1).
	NoGradScale bool
	// ScaleF16 rounds each learned LSQ scale to IEEE half precision in the forward (and in
	// LearnedParams), as llama.cpp stores the scale of a Q4_0 or Q8_0 block: a weight quantized
	// PerGroup of 32 along its input dimension with symmetric 4- or 8-bit levels is then exactly
	// representable in those GGUF types. The gradient is LSQ's (straight through the rounding).
	// LSQ with a symmetric scheme only.
	ScaleF16 bool
}

// Range returns the integer range of the configuration (Unsigned for PACT).
func (c Config) Range() quant.Range {
	if c.Method == PACT || c.Scheme == AsymmetricUnsigned {
		return quant.Unsigned(c.Bits)
	}
	if c.Scheme == AsymmetricSigned {
		return quant.Signed(c.Bits)
	}
	return quant.NarrowSigned(c.Bits)
}

// Symmetric reports whether the zero point is fixed at 0 (SymmetricNarrow and PACT).
func (c Config) Symmetric() bool { return c.Method == PACT || c.Scheme == SymmetricNarrow }

// Qp is the LSQ positive level count: qmax for symmetric configurations, qmax-qmin otherwise.
func (c Config) Qp() int {
	r := c.Range()
	if c.Symmetric() {
		return int(r.Max)
	}
	return int(r.Max - r.Min)
}

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("fakequant: invalid config")

// Validate checks the configuration independently of the input shape.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: empty Name", ErrConfig)
	case !quant.ValidBits(c.Bits):
		return fmt.Errorf("%w: %s: Bits %d outside 2..8", ErrConfig, c.Name, c.Bits)
	case c.Scheme < SymmetricNarrow || c.Scheme > AsymmetricUnsigned:
		return fmt.Errorf("%w: %s: unknown %v", ErrConfig, c.Name, c.Scheme)
	case c.Granularity < PerTensor || c.Granularity > PerGroup:
		return fmt.Errorf("%w: %s: unknown %v", ErrConfig, c.Name, c.Granularity)
	case c.Method < LSQ || c.Method > PACT:
		return fmt.Errorf("%w: %s: unknown %v", ErrConfig, c.Name, c.Method)
	case c.Grad < ClippedSTE || c.Grad > PlainSTE:
		return fmt.Errorf("%w: %s: unknown %v", ErrConfig, c.Name, c.Grad)
	case c.Granularity == PerGroup && c.GroupSize < 1:
		return fmt.Errorf("%w: %s: PerGroup needs GroupSize >= 1", ErrConfig, c.Name)
	case c.ScaleF16 && (c.Method != LSQ || !c.Symmetric()):
		return fmt.Errorf("%w: %s: ScaleF16 needs LSQ and a symmetric scheme", ErrConfig, c.Name)
	case c.LearnOffset && (c.Method != LSQ || c.Symmetric()):
		return fmt.Errorf("%w: %s: LearnOffset needs LSQ and an asymmetric scheme", ErrConfig, c.Name)
	case !(c.Momentum >= 0 && c.Momentum <= 1):
		return fmt.Errorf("%w: %s: Momentum %v outside [0,1]", ErrConfig, c.Name, c.Momentum)
	case !(c.InitScale >= 0) || c.InitScale > 1e30:
		return fmt.Errorf("%w: %s: InitScale %v (want 0 for the default or a finite positive scale)", ErrConfig, c.Name, c.InitScale)
	}
	return nil
}
