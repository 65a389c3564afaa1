// Package convop is a 2-D convolution for Gorgonia training graphs built on
// the SIMD GEMM of github.com/qatgo/qatgo/kernels/fgemm.
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
// and gorgonia.Grad work unchanged; all three implement UsePreallocDo so a
// TapeMachine reuses their output buffers between steps, and scratch
// buffers come from a pool, so a training step allocates no large buffers.
// Images are split between goroutines (up to GOMAXPROCS) when there is
// enough work.
//
// float32 and float64 tensors are supported.
package convop
