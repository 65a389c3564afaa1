// Package qat is quantization-aware training for models built with package graph: per-layer
// quantization configuration (QConfig), Prepare (fake-quantizers exactly where the integer
// runtime quantizes), simulated BatchNorm folding, a Trainer, and post-training calibration (PTQ)
// for comparison.
//
// # Where fake quantization goes
//
// Prepare attaches one fakequant.Quantizer per graph.Site of the model: the model input, the
// weight of every conv/linear group (after BN folding, per output channel, symmetric narrow
// range) and the output of every group that requantizes in the integer runtime (after its fused
// ReLU/ReLU6; asymmetric signed with a zero point). Conv+BN+ReLU is one quantized op; MaxPool,
// Flatten and Dropout pass quantization through. These are the sites export reads: for a graph
// built through a Prepared model, Prepared.Params(nq, site) returns the scales and zero points
// the fake-quant forward used, computed by the same quant functions the exporter calls.
//
// # BatchNorm folding during QAT
//
// With FoldBN (the trainer's default when quantizing) every Conv/Linear+BN group is trained as
// the op export will produce (Jacob et al. 2018, "Quantization and Training of Neural Networks
// for Efficient Integer-Arithmetic-Only Inference"; Krishnamoorthi 2018, "Quantizing deep
// convolutional networks for efficient inference: A whitepaper", section 3.2):
//
//	w_fold = gamma * W / sigma_running,        sigma = sqrt(var + eps)
//	y      = conv(x, fq(w_fold))
//	before the BN freeze step (training):
//	  y_bn = (y * sigma_running/gamma - mean_batch) * gamma/sigma_batch + beta
//	       = conv(x, fq(w_fold)) * sigma_running/sigma_batch + beta - gamma*mean_batch/sigma_batch
//	after it, and in evaluation:
//	  y_bn = conv(x, fq(w_fold)) + beta - gamma*mean_running/sigma_running
//
// The batch statistics are those of the convolution with the quantized folded weight divided by
// gamma/sigma_running (one convolution per step, as PyTorch's fused ConvBn modules do). Running
// statistics are EMA-updated outside the graph from the batch statistic nodes, which avoids
// Gorgonia's BatchNorm op (its TapeMachine resets the running statistics).
//
// # Training
//
// Trainer runs a Gorgonia TapeMachine with symbolic gradients (G.Grad): Adam or SGD with
// momentum, constant/cosine/step learning-rate schedules, mini-batches shuffled by a seed per
// epoch, and the QAT schedules FakeQuantDelay (fake quantization off until a step),
// ObserverFreeze (observers stop updating) and BNFreeze (folded BN switches to running
// statistics; the graph is rebuilt once at that step). It evaluates after every epoch, writes a
// checkpoint (parameters, BN statistics, quantizer state, optimizer state, step, epoch, seed,
// history) atomically each epoch, stops with ErrNonFinite on a NaN/Inf loss or gradient (the last
// checkpoint stays as it was) and logs progress lines (rate, ETA, loss, accuracy) through logrus.
// Resuming from a checkpoint continues the same run bit for bit.
//
// Before the first QAT step, quantizers are initialised from data: activation LSQ scales and
// offsets from the ranges an observer pass records on CalibBatches batches, weight LSQ scales with
// the LSQ rule 2*mean|w|/sqrt(Qp) on the folded weights, observers from the same pass.
//
// # Presets and checkpoints
//
// Every preset has a unique name and Preset(c.Name) returns c: W8A8, W4A8-LSQ, W4A4-LSQ,
// W4A4-obs, W2A2-LSQ, and for each its observed twin "<name>-observed" (ObservedTwin, what
// Calibrate prepares). Prepared.SaveState records the whole QConfig as JSON (overrides included,
// MetaQConfig), its name (MetaQConfigName) and the model name (MetaModel) in the checkpoint's
// metadata, next to the quantizer state and per-site flags (enabled, frozen, method, whether
// state was stored). CheckpointQConfig and NewModel rebuild both, so an exporter needs no flags.
// Prepared.LoadState returns an error naming the site when the checkpoint lacks state the QConfig
// needs (a float checkpoint, a site trained with another method, a missing obs_lo/obs_hi or
// log_scale) or holds malformed state, instead of keeping default scales.
//
// # Post-training quantization
//
// Calibrate runs the observed twin of a QConfig (every site an observer: per-channel current
// min/max for weights, running min/max for activations) over a sample of training batches with
// BN folded as export folds it, then freezes it; Evaluate measures any (model, Prepared) pair.
package qat
