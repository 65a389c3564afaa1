// Package kernels holds qatgo's integer compute kernels: int8 GEMM and GEMV with a fused
// requantization epilogue, int8 2-D and depthwise convolution on NHWC tensors, and int4-weight
// (W4A8) matrix-vector products.
//
// # Contract
//
// Activations are signed int8 with a per-tensor zero point; weights are signed int8 in the narrow
// range [-127, 127] (zero point 0) packed once with PackInt8. Products accumulate exactly in int32.
// The epilogue (Requant) is
//
//	out = clamp(quant.MultiplyByQuantizedMultiplier(acc, M0[c], Shift[c]) + ZeroPoint, Min, Max)
//
// and every implementation reproduces quant.Requantize bit for bit: there is no second copy of the
// rounding rule, the SIMD paths only compute the int32 accumulators faster.
//
// # Paths
//
// One implementation ("path") is selected at start from the CPU features reported by
// golang.org/x/sys/cpu: "avx512vnni" (VPDPBUSD on zmm), "avxvnni" (VEX VPDPBUSD on ymm), "avx2"
// (exact int16 VPMADDWD products), "neondot" (SDOT), "neon" (SMULL/SMLAL2/SADALP) or "portable"
// (plain Go). The environment variable QATGO_KERNELS=<path> forces a path; if the CPU or build
// lacks it, the automatic choice is kept and SelectionError reports why. The build tag purego
// removes the assembly and forces "portable". SetPath switches at run time (for benchmarks and
// tests); all paths give identical results.
//
// # Errors and panics
//
// PackInt8 and PackInt4 validate their input and return errors. Shape mismatches in the compute
// calls (slices too short, wrong lengths of bias or multipliers) are programmer errors and panic
// with a message naming the argument; callers validate user data first.
//
// # Threading
//
// Large problems are split over output tiles and run on a bounded pool of goroutines (at most
// GOMAXPROCS); small ones run on the calling goroutine. All functions are safe for concurrent use
// as long as distinct calls write distinct dst buffers.
package kernels
