// Package graph builds Gorgonia graphs from a small layer library and records a model spec that
// the exporter walks to lower a trained model to the integer runtime.
//
// # Layers and names
//
// A [Model] is an ordered list of [Layer] entries. Each layer method (Conv2d, Linear, BatchNorm,
// ReLU, ReLU6, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Add, Dropout) appends one layer,
// reads the previous layer's output unless input layer names are given, infers per-example
// shapes and creates its parameters. Layer names are unique (auto names are kind+counter, e.g.
// "conv2d0"); parameter names are "<layer>.<role>" (roles: weight, bias, gamma, beta,
// running_mean, running_var). Gorgonia merges nodes with equal names, so every parameter node is
// named "<model>/<param>" and the input "<model>/input".
//
// # The spec, for export
//
// Everything export needs is in the Model, without parsing Gorgonia graphs:
//
//   - Model.Input: per-example input shape (C, H, W), NCHW layout in training.
//   - Model.Layers: kinds, inputs (producer names; [InputName] for the model input), per-example
//     InShape/OutShape and attributes (Out, Kernel, Stride, Pad, Groups, Bias, Eps, Momentum, P).
//   - Model.Param(name).Value: parameter tensors (*tensor.Dense, float32). Conv weight
//     [O, I/groups, KH, KW] (OIHW), linear weight [Out, In], bias [O]; BatchNorm gamma, beta,
//     running_mean, running_var [C] (running_var is the EMA of the unbiased batch variance;
//     normalisation uses sqrt(running_var + Eps)).
//   - Model.Groups(): the fusion the integer runtime performs. Conv/Linear [+ BatchNorm] [+ ReLU or
//     ReLU6] is one quantized op (BN folded: W' = W*gamma/sigma, b' = beta + (b - mean)*gamma/sigma
//     with sigma = sqrt(running_var + eps); the activation becomes the output clamp); Add [+ ReLU] is
//     one op; MaxPool2d, Flatten and Dropout pass quantization through; every other layer is its
//     own op.
//   - Model.Sites(): the quantizer sites in graph order: "input" (model input, activation),
//     "<op>.weight" (per-output-channel weight on axis 0, applied to the BN-folded weight when the
//     group has a BN) and "<op>.out" (the group output after its fused activation). Package qat
//     attaches one fake-quantizer per site and exposes its final scale(s), zero point(s) and bit
//     width by site name; those are the parameters export writes.
//
// # Building graphs
//
// [Model.Build] lowers the model to a new graph for a batch size. Parameter nodes are bound to the
// model's tensors (shared by every graph built from the model), so a training graph and an
// evaluation graph see the same weights. Options select training mode (batch statistics,
// dropout), fake-quantization through a [Quantizer] and simulated BN folding (FoldBN, FreezeBN),
// see [Options]. BatchNorm is built from primitives (per-channel ops in this package) rather than
// Gorgonia's BatchNorm op, whose TapeMachine resets running statistics; running statistics are
// updated outside the graph by [Net.UpdateRunningStats].
//
// The custom ops of this package (per-channel ops, average pooling, the language-model ops; one
// op type per file) keep their last output tensor in an internal/opbuf buffer and reuse it on the
// next run (TapeMachine.Reset drops its registers), so a node's value is overwritten by the next
// run: copy what you need to keep. This cut a BN CNN training step from 36 MB to 7 MB of
// allocations.
//
// The convolution is [Conv2dImpl] (Gorgonia's Conv2d by default), so a faster op (package
// convop) can be swapped in; grouped and depthwise convolutions call it once per group.
// [MaxPool2DImpl] and [ReLUImpl] are swappable the same way.
//
// Gorgonia v0.9.18 facts this package works around: InverseSqrt has a wrong derivative (we use
// 1/Sqrt); AveragePool2D divides by the input width (we ship our own average pool); Dropout
// seeds itself from the clock (we feed seeded masks).
//
// # Checkpoints
//
// [Checkpoint] is a set of named float32/float64 tensors plus step, epoch, data-order seed and
// string metadata; [SaveCheckpoint] writes it atomically (temp file, fsync, rename) in a
// little-endian binary format that round-trips bit-exactly.
//
// Checkpoints are self-describing: SaveState (of a Model or an LM) records the architecture
// ([Arch]: the layer list with kinds, inputs, attributes and shapes, or the LMConfig) as JSON under
// Meta[MetaArch], and [FromCheckpoint] rebuilds the model from the checkpoint alone and loads its
// parameters (no registry of named models; [ModelFromCheckpoint] for a layer model).
//
// # One model interface
//
// Both model types, [Model] (layers: CNNs, MLPs) and [LM] (a Llama-style transformer), implement
// [Network]: architecture record, parameters, quantizer sites, fusion groups and checkpoint
// state. Package qat prepares, calibrates and trains any Network; graph building stays with the
// concrete type (an image batch to class scores, token windows to next-token logits).
//
// # Equivalent rewrites of an LM
//
// Two rewrites change an LM's weights, not its function (exact arithmetic), to make it easier to
// quantize. [LM.ChannelFold] names the producer of each activation site's channels (norm gain or
// weight rows), into which qat.SmoothQuant folds per-channel scales. [LMRotations] are the
// rotations of QuaRot / SpinQuant (residual R1 with the norm gains folded into the linears,
// per-head R2 on values and attention output, online Walsh-Hadamard before w2): LM.Build
// multiplies them into the weights inside the graph (LMOptions.Rotations: for learning them
// and for quantizers that see rotated weights), [LM.FoldRotations] into the stored weights,
// after which only the online Hadamard transforms remain in the graph (LMConfig.OnlineHadamard,
// recorded in the architecture so that export lowers them to the runtime's Hadamard op).
package graph
