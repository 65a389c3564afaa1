// Package convop is a 2-D convolution for Gorgonia training graphs built on
// the SIMD GEMM of github.com/qatgo/qatgo/fgemm.
//
// Conv2d has the semantics of gorgonia.Conv2d with dilation 1: input x is
// NCHW (batch, channels, height, width), the kernel w is
// (out channels, in channels, kernel height, kernel width), padding is
// symmetric zero padding per spatial axis, and the output is
// (batch, out channels, outH, outW) with
//
//	outH = (H + 2*pad[0] - kh)/stride[0] + 1
//	outW = (W + 2*pad[1] - kw)/stride[1] + 1
//
// Per image, the forward pass is y = W * im2col(x) (an
// (out) x (in*kh*kw) by (in*kh*kw) x (outH*outW) product). The gradient with
// respect to x is col2im(W^T * dy) and with respect to W it is the sum over
// images of dy * im2col(x)^T. Each is its own Gorgonia op, so TapeMachine
// and gorgonia.Grad work unchanged.
//
// The package also has MaxPool2D and ReLU, drop-in replacements for
// gorgonia.MaxPool2D and gorgonia.Rectify that do one pass over the data
// each way instead of several (they dominate a small CNN's step once the
// convolutions are fast).
//
// Buffers and the lifetime of values: every op implements
// gorgonia.UsePreallocDoer, but that alone does not make a training loop
// allocation-free. TapeMachine reuses register buffers only within one run:
// TapeMachine.Reset clears its registers, so the next RunAll would hand the
// ops no buffer and every output would be allocated again each step (this
// is what the design handbook's "UsePreallocDo lets TapeMachine reuse output
// buffers" leaves out). Each op therefore also keeps the output tensor of
// its last Do and writes the next result into it (unless it is one of the
// op's inputs). Scratch buffers (im2col columns) come from a sync.Pool, so
// a training step allocates no large buffers in these ops.
//
// The consequence for callers: the Value of a node built by this package
// (for example the logits read after RunAll) is valid only until the next
// run of the machine, which overwrites it in place. Copy a value (for
// example with tensor.Dense.Clone) to keep it across runs. Within a run,
// TapeMachine also hands the register of a node that has no readers left
// to a later op, whose UsePreallocDo then writes into that node's tensor:
// an intermediate node's Value can already hold another node's result when
// RunAll returns (Gorgonia's TraceExec machine option binds copies
// instead). One graph must not be run by two machines at the same time,
// and an op must not be shared between graphs.
//
// Images (and, for ReLU and MaxPool2D, element ranges) are split between
// goroutines (up to GOMAXPROCS) when there is enough work. float32 and
// float64 tensors are supported; float32 element-wise passes use AVX2 on
// amd64 (the purego build tag forces plain Go).
package convop
