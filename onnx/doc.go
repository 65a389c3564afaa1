// Package onnx reads and writes ONNX models (https://onnx.ai) through the protobuf types of package
// onnxpb.
//
// # Writing float models
//
// [FromModel] turns a float [graph.Model] (its layer spec and parameter tensors) into an ONNX graph in
// NCHW layout with opset [Opset]: Conv, Gemm, BatchNormalization, Relu, Clip (ReLU6), MaxPool,
// AveragePool, GlobalAveragePool (+ Flatten, since the library's global pool yields a vector),
// Flatten, Add; Dropout is written as Identity (evaluation). The input is named "input" with a
// symbolic batch dimension "N"; the output is named "output". Weights are float32 initializers
// (raw little-endian data). [WriteFile] writes the encoded model atomically.
//
// # Reading float models
//
// [Import] turns a float ONNX model into a [graph.Model] with its weights (see its documentation for
// the operators and attribute values it accepts). Everything it cannot express exactly is an error
// naming the operator, the node and the opset; nothing is silently dropped.
//
// # Writing quantized models
//
// [FromQModel] writes an integer model (package qmodel) as a QDQ graph: QuantizeLinear /
// DequantizeLinear pairs around float Conv, Gemm, Add and pools, with int8 per-channel weights and
// int32 biases, which onnxruntime runs with its int8 kernels.
package onnx
