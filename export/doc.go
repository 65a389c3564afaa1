// Package export lowers a model trained with package qat (a graph.Model or a graph.LM with
// fake-quantizers at its graph.Sites) to the integer model of package qmodel that package infer
// runs, and checks that the two agree.
//
// Lower is the one entry point for both kinds of model: it dispatches on qat.Prepared.Net. The
// options a kind does not use must be left zero (Options documents which apply to which).
//
// # What Lower does (layer models)
//
//   - Freezes and folds: every conv/linear group (graph.Model.Groups) becomes one quantized op.
//     A BatchNorm in the group is folded exactly as graph's simulated folding computes it in
//     float32 (see Fold): W' = W*gamma/sigma, b' = beta + (b-mean)*gamma/sigma,
//     sigma = sqrt(running_var+eps). A fused ReLU/ReLU6 becomes the output clamp.
//   - Quantizes weights with the trained weight quantizer of the site "<op>.weight" (per output
//     channel symmetric narrow range, zero point 0) through quant.QuantizeValue, the rule the
//     fake-quant forward uses, so the integer weights are the fake-quantized levels (dequantized,
//     the same floats bit for bit).
//     Weights of at most 4 bits are stored as int4 (two per byte), others as int8. Levels that use
//     at most half of the storage range (2- and 3-bit weights) are stored multiplied by k with
//     scale s/k, the same reals with a k times finer bias scale (Options.NoWeightRescale).
//   - Biases become int32 with scale s_in*s_w[c] (rounded with quant.Round); the runtime derives
//     the requantization multipliers s_in*s_w[c]/s_out with quant.QuantizeMultiplier.
//   - Changes layout: training is NCHW with OIHW weights; the runtime is NHWC with weights
//     [OutC, KH, KW, InC/groups] (k = (kh*KW+kw)*InC + c within a row). A Flatten of a (C,H,W)
//     tensor becomes a Reshape of the runtime's (H,W,C) tensor, and the weight columns of the
//     Linear that reads it are permuted so that it computes the same sums as in training
//     (column (h*W+w)*C+c of the exported weight is column c*H*W+h*W+w of the trained one).
//     A flattened tensor that reaches anything but a Linear (or Dropout/Add on equally flattened
//     tensors) is rejected, since its element order would differ from training.
//
// Layer mapping: model input -> Quantize (float32 input, or uint8 with Options.Uint8Input);
// Conv2d (+BatchNorm) (+ReLU/ReLU6) -> Conv2D (dense or depthwise, stride, symmetric padding with
// the input zero point; other groupings, such as 2 groups or a depthwise channel multiplier > 1,
// become a dense Conv2D with zero weights outside each group, which the runtime supports); Linear (+BatchNorm) (+ReLU/ReLU6) -> FullyConnected; MaxPool2d ->
// MaxPool2D (same parameters as its input); AvgPool2d and GlobalAvgPool -> AvgPool2D when the
// pool's output quantizer equals its input's, otherwise a depthwise Conv2D with all-one weights of
// scale 1/(KH*KW), which rounds the window sum once to the output scale as the fake-quant graph
// does (GlobalAvgPool adds a Reshape to (C)); Add (+ReLU/ReLU6) -> Add (both inputs rescaled);
// standalone BatchNorm, ReLU or ReLU6 (not after a conv/linear) -> a depthwise 1x1 Conv2D with
// weights +-127 of scale |gamma/sigma|/127 (exact), bias beta - mean*gamma/sigma and the
// activation in the clamp; Flatten -> Reshape; Dropout -> nothing; then optionally Softmax (Options.Softmax) and a
// Dequantize to float32 output. The runtime tensor of the activation site "<op>.out" is named
// "<op>" and the quantized input "input" (TensorName).
//
// Activations are int8 in the runtime. An unsigned 8-bit site (PACT) is the signed one shifted:
// zero point z-128. A site of fewer than 8 bits (range [qmin, qmax], e.g. [-8,7]) needs a clamp
// to that range, and qmodel's ops clamp only to [-128,127] (or ReLU/ReLU6 bounds): the op that
// computes it writes level q as q+127-qmax (its int8 clamp at 127 is then qmax), and an exact
// identity (a depthwise 1x1 Conv2D with weight 1 and multiplier 1, named "<op>"; the first op is
// "<op>/q") moves level q to q-128-qmin, clamping at qmin. Consumers read the second
// representation. This costs one cheap op per low-bit activation without a fused ReLU/ReLU6 (with
// one, the ReLU's clamp at real 0 already lies at or above qmin, so the first op suffices) and
// matches the fake-quant clamp exactly.
//
// # Where the quantizer state comes from
//
// SiteParams builds the evaluation graph of the prepared model (BN folded with running statistics,
// activation observers frozen, as qat.Trainer.Evaluate does), runs it once and reads
// qat.Prepared.Params for every site. Observer ranges reach the Prepared when the trainer syncs
// them (Trainer.Evaluate and Trainer.SaveCheckpoint do); FromCheckpoint restores them from a
// checkpoint.
//
// # Parity
//
// Parity runs the same fake-quant evaluation graph and the integer runtime (infer, with a session
// that keeps intermediate tensors) on one batch and reports, per activation site, the largest
// difference in integer levels (LSB) and the shares of elements that are equal and within 1 LSB,
// plus the share of examples whose argmax predictions agree. These end-to-end numbers include
// what earlier layers contributed (a layer whose scale is finer than its input's amplifies an
// upstream 1-LSB difference), so every single-input layer is also measured alone: its runtime
// op(s) are cut out of the integer model (an int8-input model of their own) and run on the
// fake-quant graph's input values for that layer (LayerParity.Local*). Report.Check fails, naming
// the layer, when a layer or the agreement is worse than the Thresholds; Export does Lower +
// Parity + Check; ParityLabeled also measures both models' accuracy.
//
// # Language models
//
// Lower exports a prepared graph.LM (RestoreLM restores one from a checkpoint) to the qmodel
// language-model ops that infer.LM runs, built by internal/lmref.Build (one lowering of the
// architecture, shared with the random test models): Embedding, per block RMSNorm, Linear wq/wk/wv,
// RoPE on q and k, Attention with an int8 KV cache, Linear wo, Add, RMSNorm, Linear w1/w3, SwiGLU,
// Linear w2, Add, then the final RMSNorm, LMHead and Dequantize (op names "blk<i>.attn.wq" ...).
//
//   - Weights are quantized with their trained quantizer's parameters through quant.QuantizeValue,
//     as the fake-quant forward does: int8 per output channel at 5-8 bits, int4 (per channel or
//     per group) at 2-4 bits. Per-group float scales s[row][g] become qmodel's integer form: row
//     scale max_g s / Smax and sub-scales round(s/row) with Smax = GroupScaleMax(K) (32767, or less
//     where the int32 accumulator needs it). The levels are those of the fake-quant graph; the
//     snapping changes a group's real scale by a relative 0.5/sub-scale at most (about 1e-4 for
//     the largest group of a row), which LMReport.GroupScaleErr reports: the
//     fake-quant graph keeps the float group scales.
//   - The activation sites of the Prepared give the norm outputs (the linears' inputs), the
//     attention output (wo's input) and the SwiGLU output (w2's input); they must be 8-bit signed.
//   - KV-cache sites (qat.QConfig.KV: trained or calibrated keys and values, symmetric per head
//     at 2-8 bits) give the cache scales; below 8 bits the Attention op also gets the cache range
//     (qmodel.AttentionOptions.KCacheMax: 7 at 4 bits), so the runtime's int8 cache holds exactly
//     the fake-quantized levels, clamped where the fake-quantizer clamps.
//   - Every other point where the runtime quantizes (graph.LMPoint: embedding output, linear
//     outputs, RoPE outputs, the KV cache per head unless a KV-cache site covers it, residual
//     adds) has no state in the Prepared:
//     Lower builds the fake-quant graph with an observer quantizer at each of them
//     (graph.LMOptions.Points) and fits them on Options.Calib (running min/max, asymmetric per
//     tensor; the KV cache symmetric per head; the embedding symmetric per tensor, so that the
//     table stores exactly the fake-quantized levels). The exported model holds the result: each
//     point's parameters are those of its runtime tensor (the cache scales those of the
//     Attention op).
//   - The online Walsh-Hadamard before w2 of a rotated LM (graph.LMConfig.OnlineHadamard) becomes
//     the runtime's Hadamard op; the SwiGLU output before it is then a calibrated point and the
//     Hadamard's output the w2 input site. Offline rotations must be folded into the weights
//     (graph.LM.FoldRotations) and other online rotations (graph.LMOptions.Rotate) are not
//     exported: export builds its graph without graph.LMOptions rotations.
//
// NewLMEval builds the same fake-quant graph with the points' parameters read back from the
// exported model: a graph that models the runtime at every quantization point of that file. Its
// loss (LMEval.Loss) is the fake-quant figure the integer runtime is compared with, next to the
// training graph's. LMEval.Parity runs it and the integer runtime on the same sequences and reports per
// runtime tensor the largest difference in levels and the shares equal and within 1 LSB (end to
// end: later layers include the differences of earlier ones), the agreement of the greedy next
// tokens, both losses and the largest logit difference.
//
// Between the quantization points the graph computes RMSNorm, RoPE, attention, SwiGLU, the
// Hadamard, the residual adds, the linears' requantization and the logits in float, where the
// runtime uses integer and fixed-point arithmetic (and snapped integer group scales): near a
// rounding boundary the two give levels 1 LSB apart, and near a tie of the logits another greedy
// token. So NewLMEval binds its graph to the exported model: every runtime op is a substitute
// node (graph.LMOptions.Runtime, graph.RuntimeSubstitute) whose value is the op's output on the
// graph's int8 levels and whose gradient is the float op's (straight through). By default
// (ArithSpec) internal/lmspec computes that output: a slow implementation of the integer ops
// written from their specification (qmodel's op docs, quant's rounding), independent of infer
// and kernels and checked against them bit for bit in its tests, so Parity's zero-LSB columns and
// the greedy agreement are a real check of the runtime. LMEval.SetArith(ArithRuntime) takes the
// values from infer's own ops instead (infer.LMOpRunner: agreement by construction, a
// diagnostic); ArithFloat (UseFloatArith) switches the graph back to its float ops (Lower's
// calibration always runs them). A runtime op without a substitute is an error.
package export
