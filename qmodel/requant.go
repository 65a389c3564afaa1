package qmodel

import "fmt"

// MetaRequant is the metadata key that selects a model's requantization rule. Absent (or
// RequantDefault), Conv2D, FullyConnected and Add follow the integer contract of package quant
// (Q31 multipliers, one rounding, ties toward +inf; TFLite's Add). RequantOnnxruntime makes the
// runtime compute what onnxruntime's int8 kernels compute on the model's QDQ export (package
// onnx), bit for bit: the multiplier float32(float32(s_in*s_w[c])/s_out) applied to the float32
// accumulator with round half to even (quant.Float32Multiplier, in integers), onnxruntime's
// float32 QLinearAdd (quant.OnnxruntimeAddTable) and QuantizeLinear's half-to-even rounding.
// Models with other ops that requantize (AvgPool2D, Softmax, a uint8 input) are refused under it.
const MetaRequant = "requant"

// The values of Meta[MetaRequant].
const (
	RequantDefault     = "default"
	RequantOnnxruntime = "onnxruntime"
)

// Requant returns the model's requantization rule (RequantDefault when Meta has none) or an error
// naming an unknown one.
func (m *Model) Requant() (string, error) {
	switch v, ok := m.Meta[MetaRequant]; {
	case !ok || v == RequantDefault:
		return RequantDefault, nil
	case v == RequantOnnxruntime:
		return v, nil
	default:
		return "", fmt.Errorf("qmodel: unknown requantization rule %q in metadata %q (want %q or %q)", v, MetaRequant, RequantDefault, RequantOnnxruntime)
	}
}
