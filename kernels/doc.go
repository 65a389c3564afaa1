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
// and every implementation reproduces quant.Requantize bit for bit. The Go code calls quant
// directly; the vectorised epilogues in assembly (amd64) evaluate the same exact 64-bit formula
// and are tested against quant.Requantize on extreme accumulators, multipliers and zero points.
//
// # Paths
//
// One implementation ("path") is selected at start from the CPU features reported by
// golang.org/x/sys/cpu: "avx512vnni" (VPDPBUSD on zmm), "avxvnni" (VEX VPDPBUSD on ymm), "avx2"
// (exact int16 VPMADDWD products), "neondot" (SDOT), "neon" (SMULL/SMLAL2/SADALP) or "portable"
// (plain Go). The environment variable QATGO_KERNELS=<path> forces a path; if the CPU or build
// lacks it, the automatic choice is kept and SelectionError reports why. The build tag purego
// removes the assembly and forces "portable". SetPath switches at run time (for benchmarks and
// tests); all paths give identical results. On CPUs with Intel AMX-INT8 (Linux only), the
// avx512vnni path runs stride-1 convolutions whose output channels are whole tiles of 16 on
// the AMX tile unit (TDPBUSD), with the same epilogue; AMX reports it and QATGO_AMX=0 turns
// it off.
//
// # How the SIMD paths work
//
// PackInt8 stores the weights in tiles of 16 output channels by groups of 4 K values (64 bytes
// per group and tile: one zmm, two ymm or four NEON registers). On amd64 the stored byte is
// w+128, the unsigned operand of VPDPBUSD, multiplied by signed activations broadcast from
// memory; the kernels start from bias - 128*sum(activation row), so nothing is approximated
// and nothing saturates. The AVX2 path multiplies the same bytes, zero-extended, by
// activations sign-extended to int16 with VPMADDWD (VPMADDUBSW would saturate). arm64 stores
// the weights as they are and uses SDOT, or SMULL/SMLAL into int16 (exact because weights are
// at most 127 in magnitude) followed by SADALP. The epilogue is vectorised on amd64 and arm64
// (64-bit products, the exact TFLite single rounding) and checked against quant.Requantize.
//
// The portable path multiplies two output channels per 64-bit product: the weights of a
// channel pair are packed as w0 + w1<<32 (built on first use), and the two int32 dot products
// are read back exactly from the int64 sum (portable.go).
//
// Batch-1 rows (m <= 2) take a GEMV kernel that streams several weight tiles at once.
// Conv2DInt8 builds patch rows from a zero-point-padded copy of the image; with AVX-512 or
// AVX2 and KW*InC <= 4 (first layers) it skips the patches and reads the padded image in place
// (AVX2: widened to int16 once per image). int4
// weights (PackInt4) are unpacked from nibbles inside the GEMV loop. DepthwiseConv2DInt8 runs
// one vector call per output row (AVX2 or NEON) on the padded image, 16 channels at a time.
//
// FusedConv runs a convolution with its epilogue and an optional following 2x2 max pool in one
// pass over each image (the conv -> ReLU -> pool blocks of small CNNs): the kernels read the
// zero-point-padded image in place (AVX-512 VNNI and AVX-VNNI as u8 = a+128 with signed
// weights, so 128*sum(w) folds into the bias and no row sums are needed; AVX2 widened to
// int16), pool the int32 accumulators (exact: the requantization is monotone) and requantize
// only the pooled values, in registers on AVX-512. With AVX-512 the GEMM also requantizes
// inside its micro-kernels for whole tiles.
//
// The assembly files (*_amd64.s, *_arm64.s) are written by gen_asm.go: run go generate
// after changing it.
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
// as long as distinct calls write distinct dst buffers. After a warm-up call (which may build
// lazily packed weight layouts and fill internal free lists), the compute functions allocate
// nothing: work is handed to the goroutines as reused task structs, not closures, and scratch
// buffers come from free lists that, unlike sync.Pool, are never emptied by the garbage
// collector (TestNoAllocs; a Conv2DInt8 call needs a caller scratch buffer for this). The
// free lists keep their largest buffers for the life of the process.
package kernels

//go:generate go run gen_asm.go
