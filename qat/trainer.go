package qat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qatgo/qatgo/fakequant"
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Dataset is a labelled image set (data/mnist.Set implements it).
type Dataset interface {
	Len() int
	// Batch writes the examples with the given indices into x (NCHW float32) and y (class ids).
	Batch(idx []int, x []float32, y []int)
}

// Config configures a Trainer. Zero values take the defaults noted.
type Config struct {
	Epochs    int     // default 1
	BatchSize int     // default 64
	EvalBatch int     // default 500
	Optimizer string  // Adam (default) or SGD
	LR        float64 // default 1e-3 (Adam), 0.05 (SGD)
	MinLR     float64 // cosine floor
	Momentum  float64 // SGD momentum / Adam beta1 (default 0.9)
	// WeightDecay applies to conv/linear weights (L2 for SGD, decoupled for Adam).
	WeightDecay float64
	Schedule    string  // ConstLR (default), CosineLR, StepLR, WarmupCosineLR
	Warmup      int64   // WarmupCosineLR: linear warm-up steps
	Beta2       float64 // Adam beta2 (default 0.999; 0.95 is usual for transformers)
	ClipNorm    float64 // clip gradients to this global L2 norm (0: no clipping)
	// Loss turns the model output and the target into the scalar training loss (default
	// CrossEntropy: classification for a Model, next-token prediction for an LM).
	Loss       Loss
	StepEpochs int     // StepLR period in epochs
	StepGamma  float64 // StepLR factor (default 0.1)
	Seed       uint64  // data order and dropout masks
	// StopAfter ends Fit after this many epochs of the call (0: run to Epochs). The LR schedule
	// still spans Epochs, so an interrupted run resumed from its checkpoint is the same run.
	StopAfter int

	// QAT schedules, in optimizer steps counted from the start of this training run's step 0.
	FakeQuantDelay int64 // fake quantization turns on at this step (0: from the start)
	ObserverFreeze int64 // observers freeze at this step (0: never)
	BNFreeze       int64 // folded BN switches to running statistics at this step (0: never)
	NoFoldBN       bool  // build Conv+BN unfolded even when quantizing (not what export does)
	// CalibBatches is the number of batches used to initialise quantizers before QAT (default 8).
	CalibBatches int

	CheckpointDir string         // "" disables checkpoints; else <dir>/checkpoint.bin each epoch
	Logger        *logrus.Logger // nil: logrus.StandardLogger()
	LogEvery      int            // progress line every n steps (default: ~10 per epoch)
	EvalLimit     int            // evaluate on the first n test examples (0: all)
}

func (c *Config) defaults() {
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.BatchSize == 0 {
		c.BatchSize = 64
	}
	if c.EvalBatch == 0 {
		c.EvalBatch = 500
	}
	if c.Optimizer == "" {
		c.Optimizer = Adam
	}
	if c.LR == 0 {
		c.LR = 1e-3
		if c.Optimizer == SGD {
			c.LR = 0.05
		}
	}
	if c.Momentum == 0 {
		c.Momentum = 0.9
	}
	if c.Schedule == "" {
		c.Schedule = ConstLR
	}
	if c.StepGamma == 0 {
		c.StepGamma = 0.1
	}
	if c.CalibBatches == 0 {
		c.CalibBatches = 8
	}
	if c.Logger == nil {
		c.Logger = logrus.StandardLogger()
	}
}

// EpochStats records one epoch.
type EpochStats struct {
	Epoch     int
	Step      int64
	LR        float64
	TrainLoss float64
	TrainAcc  float64
	TestLoss  float64
	TestAcc   float64
	Seconds   float64 // training time of the epoch (without evaluation)
}

// CurvePoint is the running mean training loss and accuracy of an epoch at a step.
type CurvePoint struct {
	Step      int64
	Epoch     float64 // fractional epoch
	TrainLoss float64
	TrainAcc  float64
}

// ErrNonFinite is wrapped by the error Fit returns when the loss or a gradient is NaN or Inf. The
// last checkpoint written (end of the previous epoch) is left untouched.
var ErrNonFinite = errors.New("qat: non-finite loss or gradient")

// Trainer trains a model (float, or fake-quantized through a Prepared) with a TapeMachine.
type Trainer struct {
	Model   *graph.Model
	Prep    *Prepared // nil: float training
	Cfg     Config
	Step    int64 // optimizer steps taken
	Epoch   int   // epochs completed
	History []EpochStats
	// Curve holds the running training loss and accuracy at every progress line.
	Curve []CurvePoint

	opt         *optimizer
	train, eval *netRun
	qatInit     bool
}

type netRun struct {
	net    *graph.Net
	vm     G.VM
	loss   *G.Node
	yVal   *tensor.Dense
	grads  map[string]*G.Node // gradient by optimizer name
	nq     *NetQuant
	freeze bool // built with FreezeBN
}

func (r *netRun) close() {
	if r != nil && r.vm != nil {
		r.vm.Close()
	}
}

// NewTrainer returns a trainer for m (float when p is nil).
func NewTrainer(m *graph.Model, p *Prepared, cfg Config) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	if err := m.Err(); err != nil {
		return nil, err
	}
	if m.Dtype != tensor.Float32 {
		return nil, fmt.Errorf("qat: trainer needs a float32 model")
	}
	if os := m.OutShape(); len(os) != 1 {
		return nil, fmt.Errorf("qat: model output %v is not a vector of class scores", os)
	}
	opt, err := newOptimizerClip(cfg.Optimizer, cfg.Momentum, cfg.Beta2, cfg.WeightDecay, cfg.ClipNorm)
	if err != nil {
		return nil, err
	}
	return &Trainer{Model: m, Prep: p, Cfg: cfg, opt: opt}, nil
}

// Close releases the machines.
func (t *Trainer) Close() {
	t.train.close()
	t.eval.close()
	t.train, t.eval = nil, nil
}

func (t *Trainer) build(train, freezeBN bool, batch int) (*netRun, error) {
	o := graph.Options{Batch: batch, Train: train, FreezeBN: freezeBN}
	r := &netRun{freeze: freezeBN}
	if t.Prep != nil {
		r.nq = t.Prep.Quantizer()
		if !train {
			r.nq = t.Prep.EvalQuantizer()
		}
		o.Quant = r.nq
		o.FoldBN = !t.Cfg.NoFoldBN
	}
	n, err := t.Model.Build(o)
	if err != nil {
		return nil, err
	}
	r.net = n
	k := t.Model.OutShape()[0]
	r.yVal = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch, k))
	y := G.NewMatrix(n.G, tensor.Float32, G.WithShape(batch, k), G.WithName(t.Model.Name+"/labels"), G.WithValue(r.yVal))
	if r.loss, err = t.Cfg.loss()(n.Out, y); err != nil {
		return nil, err
	}
	if train {
		var names []string
		var wrt G.Nodes
		for _, p := range t.Model.Params() {
			if p.Trainable {
				names = append(names, "param/"+p.Name)
				wrt = append(wrt, n.Params[p.Name])
			}
		}
		if r.nq != nil {
			for name, node := range r.nq.LearnableNodes() {
				names = append(names, "quant/"+name)
				wrt = append(wrt, node)
			}
		}
		gs, err := G.Grad(r.loss, wrt...)
		if err != nil {
			return nil, fmt.Errorf("qat: gradients: %w", err)
		}
		r.grads = map[string]*G.Node{}
		for i, name := range names {
			r.grads[name] = gs[i]
		}
	}
	r.vm = G.NewTapeMachine(n.G)
	return r, nil
}

// tensorsByName maps optimizer names to the tensors they update.
func (t *Trainer) tensorsByName() map[string]*tensor.Dense {
	out := map[string]*tensor.Dense{}
	for _, p := range t.Model.Params() {
		if p.Trainable {
			out["param/"+p.Name] = p.Value
		}
	}
	if t.Prep != nil {
		for _, l := range t.Prep.Learnables() {
			out["quant/"+l.Name] = l.Value
		}
	}
	return out
}

func (t *Trainer) ensureTrain() error {
	freeze := t.Cfg.BNFreeze > 0 && t.Step >= t.Cfg.BNFreeze
	if t.train != nil && t.train.freeze == freeze {
		return nil
	}
	t.train.close()
	var err error
	t.train, err = t.build(true, freeze, t.Cfg.BatchSize)
	return err
}

func (t *Trainer) applySchedules() {
	if t.Prep == nil {
		return
	}
	t.Prep.SetEnabled(t.Step >= t.Cfg.FakeQuantDelay)
	t.Prep.FreezeObservers(t.Cfg.ObserverFreeze > 0 && t.Step >= t.Cfg.ObserverFreeze)
}

// feed writes the examples idx of d into the net's input and their one-hot labels into the
// target. A label outside the model's classes is an error naming the example.
func (r *netRun) feed(d Dataset, idx []int, y []int) error {
	x := r.net.XVal.Data().([]float32)
	d.Batch(idx, x, y)
	yv := r.yVal.Data().([]float32)
	clear(yv)
	k := r.yVal.Shape()[1]
	for i, c := range y {
		if c < 0 || c >= k {
			return labelError(idx[i], c, k)
		}
		yv[i*k+c] = 1
	}
	return nil
}

func (r *netRun) run() error {
	r.vm.Reset()
	return opError(r.vm.RunAll())
}

// correct counts argmax(logits) == y over the first n rows.
func correct(logits G.Value, y []int, n int) int {
	d := logits.Data().([]float32)
	k := len(d) / len(y)
	c := 0
	for i := 0; i < n; i++ {
		row := d[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == y[i] {
			c++
		}
	}
	return c
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// Fit trains for the remaining epochs (Cfg.Epochs - t.Epoch), evaluating on test after each
// epoch and writing a checkpoint when Cfg.CheckpointDir is set.
func (t *Trainer) Fit(train, test Dataset) error {
	c := &t.Cfg
	B := c.BatchSize
	spe := int64(train.Len() / B)
	if spe == 0 {
		return fmt.Errorf("qat: %d training examples for batch size %d", train.Len(), B)
	}
	total := spe * int64(c.Epochs)
	if c.CheckpointDir != "" {
		if err := os.MkdirAll(c.CheckpointDir, 0o755); err != nil {
			return err
		}
	}
	t.applySchedules()
	if err := t.ensureTrain(); err != nil {
		return err
	}
	if t.Prep != nil && !t.qatInit && t.Step == 0 {
		if err := t.initQuantizers(train); err != nil {
			return err
		}
	}
	t.qatInit = true
	logEvery := c.LogEvery
	if logEvery <= 0 {
		logEvery = int(max(spe/10, 1))
	}
	y := make([]int, B)
	idx := make([]int, B)
	// tensors is rebuilt only when the training graph is (tensorsRun records which graph it
	// reflects), not every step; nil forces it at the start of each epoch, after evaluation.
	var tensors map[string]*tensor.Dense
	var tensorsRun *netRun
	stop := c.Epochs
	if c.StopAfter > 0 {
		stop = min(stop, t.Epoch+c.StopAfter)
	}
	for t.Epoch < stop {
		ep := t.Epoch
		tensorsRun = nil
		perm := rand.New(rand.NewPCG(c.Seed, uint64(ep))).Perm(train.Len())
		start := time.Now()
		var sumLoss float64
		var nCorrect, nSeen int
		for s := int64(0); s < spe; s++ {
			t.applySchedules()
			if err := t.ensureTrain(); err != nil {
				return err
			}
			if t.train != tensorsRun {
				// a rebuilt graph (BN freeze) may have created quantizer state
				tensors, tensorsRun = t.tensorsByName(), t.train
			}
			r := t.train
			copy(idx, perm[s*int64(B):(s+1)*int64(B)])
			lr := lrAt(c, t.Step, total, spe)
			loss, err := t.trainStep(train, idx, y, lr, tensors)
			if err != nil {
				return fmt.Errorf("%w (epoch %d)", err, ep+1)
			}
			sumLoss += loss
			nCorrect += correct(r.net.Out.Value(), y, B)
			nSeen += B
			if (s+1)%int64(logEvery) == 0 || s+1 == spe {
				t.Curve = append(t.Curve, CurvePoint{Step: t.Step, Epoch: float64(ep) + float64(s+1)/float64(spe),
					TrainLoss: sumLoss / float64(s+1), TrainAcc: float64(nCorrect) / float64(nSeen)})
				el := time.Since(start).Seconds()
				rate := float64(nSeen) / el
				eta := time.Duration(float64(total-t.Step) * float64(B) / rate * float64(time.Second))
				c.Logger.WithFields(logrus.Fields{
					"epoch": fmt.Sprintf("%d/%d", ep+1, c.Epochs), "step": fmt.Sprintf("%d/%d", s+1, spe),
					"loss": fmt.Sprintf("%.4f", sumLoss/float64(s+1)), "acc": fmt.Sprintf("%.4f", float64(nCorrect)/float64(nSeen)),
					"img/s": fmt.Sprintf("%.0f", rate), "eta": eta.Round(time.Second).String(), "lr": fmt.Sprintf("%.3g", lr),
				}).Info("train")
			}
		}
		secs := time.Since(start).Seconds()
		st := EpochStats{Epoch: ep + 1, Step: t.Step, LR: lrAt(c, t.Step-1, total, spe),
			TrainLoss: sumLoss / float64(spe), TrainAcc: float64(nCorrect) / float64(nSeen), Seconds: secs}
		if test != nil {
			var err error
			if st.TestAcc, st.TestLoss, err = t.Evaluate(test); err != nil {
				return err
			}
		}
		t.Epoch++
		t.History = append(t.History, st)
		c.Logger.WithFields(logrus.Fields{"epoch": st.Epoch, "train_loss": fmt.Sprintf("%.4f", st.TrainLoss),
			"train_acc": fmt.Sprintf("%.4f", st.TrainAcc), "test_loss": fmt.Sprintf("%.4f", st.TestLoss),
			"test_acc": fmt.Sprintf("%.4f", st.TestAcc), "seconds": fmt.Sprintf("%.1f", secs)}).Info("epoch done")
		if c.CheckpointDir != "" {
			if err := t.SaveCheckpoint(filepath.Join(c.CheckpointDir, "checkpoint.bin")); err != nil {
				return err
			}
		}
	}
	return nil
}

// trainStep runs one forward/backward pass on the examples idx and applies the optimizer. It
// returns ErrNonFinite (wrapped) without touching parameters when the loss or a gradient is not
// finite.
func (t *Trainer) trainStep(d Dataset, idx, y []int, lr float64, tensors map[string]*tensor.Dense) (float64, error) {
	r := t.train
	if err := r.feed(d, idx, y); err != nil {
		return 0, err
	}
	if len(r.net.Masks) > 0 {
		r.net.FillMasks(rand.New(rand.NewPCG(t.Cfg.Seed^0xd20b, uint64(t.Step))))
	}
	if err := r.run(); err != nil {
		if errors.Is(err, quant.ErrNonFinite) || strings.Contains(err.Error(), "non-finite") {
			return 0, fmt.Errorf("%w: step %d: %v", ErrNonFinite, t.Step, err)
		}
		return 0, fmt.Errorf("qat: step %d: %w", t.Step, err)
	}
	loss := float64(r.loss.Value().Data().(float32))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("%w: loss %v at step %d", ErrNonFinite, loss, t.Step)
	}
	for name, g := range r.grads {
		if !finite(g.Value().Data().([]float32)) {
			return 0, fmt.Errorf("%w: gradient of %s at step %d", ErrNonFinite, name, t.Step)
		}
	}
	if !r.freeze {
		r.net.UpdateRunningStats()
	}
	gs := make([][]float32, 0, len(r.grads))
	if t.opt.clip > 0 {
		for _, g := range r.grads {
			gs = append(gs, g.Value().Data().([]float32))
		}
	}
	t.opt.beginStep(gs)
	for name, g := range r.grads {
		decay := false
		if p := t.Model.Param(strings.TrimPrefix(name, "param/")); p != nil && strings.HasPrefix(name, "param/") {
			decay = p.Role == graph.RoleWeight
		}
		t.opt.update(name, f32s(tensors[name]), g.Value().Data().([]float32), lr, decay)
	}
	t.Step++
	return loss, nil
}

// Evaluate returns accuracy and mean loss of the model (fake-quantized when prepared) on d, using
// running BN statistics and frozen activation observers.
func (t *Trainer) Evaluate(d Dataset) (acc, loss float64, err error) {
	if t.eval == nil {
		if t.eval, err = t.build(false, true, t.Cfg.EvalBatch); err != nil {
			return 0, 0, err
		}
	}
	return evaluate(t.eval, d, t.Cfg.EvalBatch, t.Cfg.EvalLimit)
}

func evaluate(r *netRun, d Dataset, B, limit int) (acc, loss float64, err error) {
	n := d.Len()
	if limit > 0 && limit < n {
		n = limit
	}
	idx := make([]int, B)
	y := make([]int, B)
	var nc int
	var sl float64
	for s := 0; s < n; s += B {
		valid := min(B, n-s)
		for i := range idx {
			idx[i] = s + min(i, valid-1) // pad the last batch with its last example
		}
		if err := r.feed(d, idx, y); err != nil {
			return 0, 0, err
		}
		if err := r.run(); err != nil {
			return 0, 0, err
		}
		nc += correct(r.net.Out.Value(), y, valid)
		sl += float64(r.loss.Value().Data().(float32)) * float64(valid)
	}
	return float64(nc) / float64(n), sl / float64(n), nil
}

// initQuantizers initialises QAT quantizers before the first step: activation LSQ sites from the
// ranges an observer pass records on CalibBatches training batches, weight LSQ sites with the LSQ
// rule on the current (folded) weights, Observed sites by running the calibration batches.
func (t *Trainer) initQuantizers(train Dataset) error {
	ranges, err := observeRanges(t.Model, t.Prep, train, t.Cfg.CalibBatches, t.Cfg.BatchSize, t.Cfg.Seed)
	if err != nil {
		return err
	}
	// one forward/backward of the training graph with quantizers off gives every weight
	// quantizer its input value (the folded weight)
	r := t.train
	y := make([]int, t.Cfg.BatchSize)
	idx := make([]int, t.Cfg.BatchSize)
	for i := range idx {
		idx[i] = i % train.Len()
	}
	if err := r.feed(train, idx, y); err != nil {
		return err
	}
	if err := t.Prep.whileDisabled(r.run); err != nil {
		return err
	}
	if err := t.Prep.initLSQ(r.nq, ranges); err != nil {
		return err
	}
	for name, rg := range ranges {
		st := t.Prep.state[name]
		if st.cfg.Method == fakequant.Observed {
			if err := st.fq.RestoreRange(rg[0], rg[1]); err != nil {
				return fmt.Errorf("qat: site %q: %w", name, err)
			}
		}
	}
	return nil
}

// SaveCheckpoint writes model parameters, BN statistics, quantizer state, optimizer state, step,
// epoch, seed and history to path atomically.
func (t *Trainer) SaveCheckpoint(path string) error {
	c := &graph.Checkpoint{Step: t.Step, Epoch: t.Epoch, Seed: t.Cfg.Seed, Meta: map[string]string{}}
	t.Model.SaveState(c)
	if t.Prep != nil {
		t.Prep.SaveState(c)
	}
	t.opt.save(c)
	h, _ := json.Marshal(t.History)
	c.Meta["history"] = string(h)
	c.Meta["model"] = t.Model.Name
	c.Meta["qat_init"] = fmt.Sprint(t.qatInit)
	return graph.SaveCheckpoint(path, c)
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint; Fit then continues with the
// same data order, optimizer state and schedules.
func (t *Trainer) LoadCheckpoint(path string) error {
	c, err := graph.LoadCheckpoint(path)
	if err != nil {
		return err
	}
	if m := c.Meta["model"]; m != "" && m != t.Model.Name {
		return fmt.Errorf("qat: checkpoint %s is for model %q, not %q", path, m, t.Model.Name)
	}
	if err := t.Model.LoadState(c); err != nil {
		return err
	}
	if t.Prep != nil {
		if err := t.Prep.LoadState(c); err != nil {
			return err
		}
	}
	if err := t.opt.load(c); err != nil {
		return err
	}
	t.Step, t.Epoch, t.Cfg.Seed = c.Step, c.Epoch, c.Seed
	t.History = nil
	if h := c.Meta["history"]; h != "" {
		if err := json.Unmarshal([]byte(h), &t.History); err != nil {
			return fmt.Errorf("qat: checkpoint history: %w", err)
		}
	}
	t.qatInit = c.Meta["qat_init"] == "true"
	t.Close() // rebuild graphs with the restored state
	return nil
}

func newVM(n *graph.Net) G.VM { return G.NewTapeMachine(n.G) }
