// Package qat is quantization-aware training for models built with package graph: per-layer
// quantization configuration (QConfig), Prepare (fake-quantizers exactly where the integer
// runtime quantizes), simulated BatchNorm folding, one Trainer for every model kind and loss, and
// post-training calibration (PTQ) for comparison.
//
// # One model path
//
// Prepare takes any graph.Network: a layer model (*graph.Model: CNNs, MLPs) or a transformer LM
// (*graph.LM). Both list their quantizer sites, fusion groups and parameters the same way, so
// the QConfig (presets, overrides keyed by layer name), the quantizer state and its
// checkpointing are shared. LMRecipe gives the usual LLM QConfig (grouped low-bit weights, wider
// head, per-tensor activations at every linear input).
//
// There is one training loop, Trainer, for either kind. What differs between kinds (how the
// network becomes a graph, what a batch is) is a Task: NewTrainer(task, prepared, config).
//   - ClassifyTask (Classify(model, dataset)): a *graph.Model on a labelled image Dataset, epochs
//     over a shuffled order, BN folding and freezing, dropout; evaluation on Images.
//   - NextTokenTask: a *graph.LM on a stream of token batches (TokenBatches, e.g. a
//     data/text.Sampler) for Config.Steps steps, build options such as rotations (Opts),
//     calibration batches; evaluation on Tokens.
//   - a user Task implements Network, Build, Feed and StepsPerEpoch.
//
// The loss is Config.Loss on the task graph's output and one-hot target: CrossEntropy by default
// (classification cross-entropy for a ClassifyTask, next-token loss for a NextTokenTask),
// LabelSmoothing, or any differentiable Gorgonia expression the user writes (see ExampleLoss).
// Everything else lives once, in the Trainer: the optimizer, Adam with decoupled weight decay
// (AdamW, Loshchilov and Hutter 2019; Config.Beta2, WeightDecay on the weights of the fusion
// groups only) or SGD with momentum; gradients clipped to a global L2 norm (Config.ClipNorm,
// Pascanu et al. 2013); schedules const, cosine, step and warm-up + cosine (WarmupCosineLR); the
// NaN/Inf guard; quantizer initialisation (Config.QuantInit) and calibration
// (Trainer.Calibrate); evaluation (Trainer.Evaluate, Metrics: loss and argmax accuracy over the
// task's labelled rows); checkpoints; progress logging; extra trained tensors such as learned
// rotations (Trainer.Hook, a StepHook).
//
// # Who owns quantizer state
//
// The Prepared model is the one owner of quantizer state: per site its learnables (LSQ log-scale
// and offset, PACT alpha: tensors that every graph built through the Prepared binds by
// reference) and one fakequant.State (observer range or fixed parameters, enabled and frozen
// flags) that the fakequant node of every graph reads and updates in place. Nothing is copied:
// what a training graph's observers see, its evaluation graph (EvalQuantizer: activation
// observers read-only) uses at once; checkpoints save and restore the owner
// (Prepared.SaveState/LoadState); export reads Prepared.Params without running a graph, after
// observing the final weights it writes (Prepared.ObserveWeight).
//
// # Where fake quantization goes
//
// Prepare attaches one fakequant.Quantizer per graph.Site of the model: the model input, the
// weight of every conv/linear group (after BN folding, per output channel, symmetric narrow
// range) and the output of every group that requantizes in the integer runtime (after its fused
// ReLU/ReLU6; asymmetric signed with a zero point). Conv+BN+ReLU is one quantized op; MaxPool,
// Flatten and Dropout pass quantization through. These are the sites export reads: for a graph
// built through a Prepared model, Prepared.Params(site) returns the scales and zero points
// the fake-quant forward uses, computed by the same quant functions the exporter calls.
//
// A language model's sites are the input of every linear and every linear weight; with
// QConfig.KV (LMRecipe.KVBits) also its KV-cache sites (graph.LM.KVSites: the keys after RoPE and
// the values of each block, symmetric with one scale per head, as the runtime's KV cache holds
// them), which train, calibrate, checkpoint and export like the others.
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
// Trainer runs a Gorgonia TapeMachine with symbolic gradients (G.Grad) over the graphs its Task
// builds: the optimizer and schedules above, mini-batches in the task's order (a ClassifyTask
// shuffles by a seed per epoch; a NextTokenTask reads its stream from NextTokenTask.First on, one
// epoch being Config.Steps steps), and the QAT schedules FakeQuantDelay (fake quantization off until a step),
// ObserverFreeze (observers stop updating) and BNFreeze (folded BN switches to running
// statistics; the graph is rebuilt once at that step). It evaluates after every epoch, writes a
// checkpoint (parameters, BN statistics, quantizer state, optimizer state, step, epoch, seed,
// history) atomically each epoch, stops with ErrNonFinite on a NaN/Inf loss or gradient (the last
// checkpoint stays as it was) and logs progress lines (rate, ETA, loss, accuracy) through logrus.
// Resuming from a checkpoint continues the same run bit for bit.
//
// Before the first QAT step, quantizers are initialised from the task's calibration batches
// (Trainer.InitQuantizers): with InitCalibrated (the default), activation LSQ scales and offsets
// from the ranges an observer pass records on CalibBatches batches, weight LSQ scales with the
// LSQ rule 2*mean|w|/sqrt(Qp) on the folded weights, observers from the same pass; with
// InitMinMax, every quantizer from the min/max of its input in one float pass.
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
// GGMLPreset{Type, KV, LearnScale}.QConfig() is llama.cpp's CPU arithmetic as a QConfig for a
// *graph.LM (QConfig.GGML): the model trains with what llama.cpp computes from the GGUF file
// gguf/llama writes, with llama.cpp's block-scale rule or learned fp16 block scales.
//
// # LLM methods
//
// They work on any model with linears that read named activation sites (LinearModel; *graph.LM
// is one) and change only float weights, so export sees plain weights:
//   - CollectLMStats gathers calibration statistics per activation site (LinearInputStats:
//     max|X_j|, and X^T X for GPTQ) from the float graph;
//   - SmoothQuant (Xiao et al. 2023) folds per-channel scales s_j = max|X_j|^a / max|W_j|^(1-a)
//     into the weight columns and the site's producer (ChannelFoldModel: norm gain or weight rows);
//   - GPTQ / GPTQLinears (Frantar et al. 2022) quantize weights with error feedback, beside
//     round-to-nearest;
//   - rotations (graph.LMRotations: residual R1, per-head R2, online Walsh-Hadamard before w2):
//     QuaRotRotations gives QuaRot's fixed randomised Hadamard ones (Ashkboos et al. 2024);
//     LearnedRotations gives SpinQuant's learned ones (Liu et al. 2024), each R = R0 Cayley(A)
//     (CayleyRotation, fakequant.Cayley) with an unconstrained parameter A that the Trainer
//     trains as its Hook while the graph multiplies R into the weights
//     (NextTokenTask.Opts.Rotations). LM.FoldRotations then folds either into the stored weights: the
//     float model is unchanged and only the online Hadamard transforms stay in the graph.
//     HadamardRotate is the other, unfoldable use: a random Hadamard rotation run online at
//     every linear input (LMOptions.Rotate).
//
// # Post-training quantization
//
// Trainer.Calibrate runs the observers of the trainer's Prepared over the task's calibration
// batches (BN folded as export folds it), then freezes them; for any task, prepare the observed
// QConfig (ObservedTwin: every site an observer, per-channel current min/max for weights, running
// min/max for activations) and calibrate: CalibrateTask does both for any task, Calibrate for a
// layer model on image data; Evaluate measures any (model, Prepared) pair on images.
package qat
