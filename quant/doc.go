// Package quant is qatgo's integer contract written once as code.
//
// Every other package, on the training side (fakequant, export) and on the deploy side (qmodel, infer,
// kernels), takes its quantization arithmetic from here, so that the fake-quant forward pass during
// training and the integer runtime on the device agree bit for bit wherever the contract says they must.
// The package imports only the standard library.
//
// # The scheme (TFLite int8 spec)
//
//		real = scale * (q - zeroPoint)
//		q    = clamp(Round(x / scale) + zeroPoint, qmin, qmax)
//
//	  - Scales are float32 (float64 is accepted by the generic helpers for float64 training graphs).
//	  - The quotient x/scale is computed by a true division in the float type of the graph (never a
//	    multiply by a precomputed reciprocal), then rounded with Round, and the zero point is added after
//	    rounding. Those three details are the usual causes of fake-vs-real mismatch in other tools.
//	  - Round is round half away from zero (math.Round), as TFLite's reference quantizer does.
//	  - Weights: symmetric, zero point 0, narrow range [-(2^(b-1)-1), 2^(b-1)-1] (see NarrowSigned).
//	  - Activations: asymmetric, full signed range [-2^(b-1), 2^(b-1)-1] (see Signed) with a zero point.
//	  - Bias: int32, scale sIn*sW[c], zero point 0.
//	  - Requantization of an int32 accumulator to the output scale uses a Q31 multiplier and a
//	    power-of-two exponent from QuantizeMultiplier, applied by MultiplyByQuantizedMultiplier with a
//	    single rounding step (TFLite's TFLITE_SINGLE_ROUNDING semantics: round half toward +inf of the
//	    exact product acc*M0/2^(31-shift)). SIMD kernels must be bit-identical to that function.
//
// A model may opt into a second rule, onnxruntime's (qmodel.RequantOnnxruntime, onnxruntime.go):
// the float32 multiplier applied to float32(acc) with two half-to-even roundings
// (Float32Multiplier, still computed in integers), onnxruntime's float32 QLinearAdd tabulated at
// load (OnnxruntimeAddTable) and half-to-even input quantization (QuantizeValueHalfEven), so
// that the integer runtime and onnxruntime give identical outputs on the QDQ export.
package quant
