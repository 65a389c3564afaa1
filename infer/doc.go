// Package infer is qatgo's integer-only interpreter: it loads a qmodel.Model and runs it.
//
// # Arithmetic
//
// Between the input Quantize and the output Dequantize every value is an integer: int8 activations,
// int8 or int4 weights, int32 accumulators, requantization with the Q31 multipliers that qmodel
// derives from the file's scales (quant.QuantizeMultiplier) and clamping, exactly as in package
// quant. Conv2D and FullyConnected run on package kernels; the input zero point is folded into the
// bias at load (bias' = bias - zIn*RowSums), so the kernels see plain int8 products. FullyConnected
// layers whose weights are int4 in the file keep them 4-bit: Load packs them with kernels.PackInt4
// (one group spanning K, group scale 1, so the accumulator is exactly bias + sum a*w) and they run
// on kernels.GEMMInt4, which unpacks the nibbles in registers; the result is bit-identical to the
// int8 path (TestInt4FCMatchesInt8 checks it on every kernels path). Where PackInt4 does not apply
// (K not a multiple of 8, a weight of -8) and for Conv2D, int4 weights are unpacked to int8 at
// load. Lookup tables (uint8 Quantize, Softmax's exponentials) are computed once at load.
//
// # Fused convolutions
//
// Load prepares a kernels.FusedConv for each Conv2D of up to 4M multiply-adds per image: together
// with a following 2x2 stride-2 MaxPool2D when the pool is the conv output's only reader and clamps
// no tighter than the conv, alone (up to 64 output channels) otherwise. On the kernels paths that
// have fused kernels (AVX-512 VNNI, AVX-VNNI, AVX2, portable Go) a session then runs conv,
// requantization, ReLU and pool in one pass per image and skips the pool step; a first conv fed
// by a Quantize of the uint8 input that is the byte minus 128 reads the input bytes directly and
// the Quantize step is skipped. Results are bit-identical to running the ops one by one
// (TestFusedMatchesOps compares them on every path), which KeepIntermediate sessions do.
//
// # Loading and buffers
//
// Load validates the model (qmodel.Model.Validate), packs the weights once (kernels.PackInt8 or
// kernels.PackInt4), precomputes biases and requantization parameters and plans the activation
// buffers: tensors whose lifetimes do not overlap share a buffer. A Session owns the buffers. It
// runs a batch in micro-batches (a few samples through all ops at a time, sized by MicroBatchBytes
// so that their activations stay in cache), optionally split over several goroutines
// (SessionOptions.Threads). After the first call at a given batch size (or a larger one) the
// interpreter does not allocate; TestNoAllocsAfterWarmup checks it and reports allocations made
// inside package kernels. Memory is bounded by the model: activations by qmodel's limits
// (MaxActivationElements, MaxTotalActivations per sample), a convolution's patch buffer by
// MaxScratchBytes (Load rejects larger ones), constants by the file size. A call with a wrong input
// allocates nothing.
//
// # Profiling
//
// Session.EnableProfile turns on per-op timing (what `qatgo bench` prints). When it is off the run
// loop does not read the clock.
//
// # Concurrency
//
// A *Model is immutable after Load and safe for concurrent use. A *Session is not: use one Session
// per goroutine (Model.NewSession is cheap), or the Model's own Predict/Run helpers, which take a
// Session from an internal sync.Pool.
//
// # Shapes
//
// Model activation shapes are per sample; Run takes a batch of samples laid out one after another
// (NHWC for images). The model must have one input (float32, uint8 or int8) and one output.
//
// The package imports only the standard library, golang.org/x/sys (through kernels) and qatgo's
// quant, qmodel and kernels packages; a test enforces it.
package infer
