package qat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/quant"
	"github.com/sirupsen/logrus"
	G "gorgonia.org/gorgonia"
)

// Config configures a Trainer. Zero values take the defaults noted.
type Config struct {
	Epochs int // default 1
	// Steps is the number of optimizer steps of an epoch for a task that streams its batches
	// (Task.StepsPerEpoch 0, e.g. NextTokenTask); required there, an error with a task that has
	// epochs (a data set's size and BatchSize give those).
	Steps     int64
	BatchSize int // examples (images, sequences) per training batch; default 64
	// EvalBatch is the batch of the evaluation graph (default 500 for a ClassifyTask, BatchSize
	// for other tasks).
	EvalBatch int
	Optimizer string  // Adam (default) or SGD
	LR        float64 // default 1e-3 (Adam), 0.05 (SGD)
	MinLR     float64 // cosine floor
	Momentum  float64 // SGD momentum / Adam beta1 (default 0.9)
	// WeightDecay applies to the weights of the fusion groups, the conv/linear weights (L2 for
	// SGD, decoupled for Adam: AdamW); not to biases, norm gains or embeddings.
	WeightDecay float64
	Schedule    string  // ConstLR (default), CosineLR, StepLR, WarmupCosineLR
	Warmup      int64   // WarmupCosineLR: linear warm-up steps
	Beta2       float64 // Adam beta2 (default 0.999; 0.95 is usual for transformers)
	ClipNorm    float64 // clip gradients to this global L2 norm (0: no clipping)
	// Loss turns the task graph's output and target into the scalar training loss (default
	// CrossEntropy: classification for a ClassifyTask, next-token prediction for a NextTokenTask).
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
	// QuantInit chooses how quantizers start before the first QAT step (InitCalibrated default).
	QuantInit QuantInit
	// CalibBatches is the number of calibration batches InitCalibrated observes (default 8).
	CalibBatches int

	CheckpointDir string         // "" disables checkpoints; else <dir>/checkpoint.bin each epoch
	Logger        *logrus.Logger // nil: logrus.StandardLogger()
	LogEvery      int            // progress line every n steps (default: ~10 per epoch)
}

func (c *Config) defaults() {
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.BatchSize == 0 {
		c.BatchSize = 64
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

// Trainer trains the network of a Task, float or fake-quantized through a Prepared of it, with a
// TapeMachine and symbolic gradients: the one training loop of the package for every model kind
// and loss (see the package doc).
type Trainer struct {
	Task Task
	Net  graph.Network // Task.Network()
	Prep *Prepared     // nil: float training
	Cfg  Config
	// Hook, when set, trains extra tensors of the training graph (learned rotations).
	Hook    StepHook
	Step    int64 // optimizer steps taken
	Epoch   int   // epochs completed
	History []EpochStats
	// Curve holds the running training loss and accuracy at every progress line.
	Curve []CurvePoint

	opt         *optimizer
	decay       map[string]bool // optimizer names with weight decay
	train, eval *taskRun
	qatInit     bool
}

// taskRun is a built graph of the task with its machine and loss (and gradients in training).
type taskRun struct {
	g      *Graph
	vm     G.VM
	loss   *G.Node
	nq     *NetQuant
	freeze bool        // built with FreezeBN
	names  []string    // optimizer names ("param/<name>", "quant/<site>.<field>") of grads
	grads  []*G.Node   // gradient of the loss by names
	values [][]float32 // the tensors the optimizer updates, by names
}

func (r *taskRun) close() {
	if r != nil && r.vm != nil {
		r.vm.Close()
	}
}

// NewTrainer returns a trainer of task's network: float when p is nil, otherwise p must prepare
// task.Network().
func NewTrainer(task Task, p *Prepared, cfg Config) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	net, err := networkOf(task)
	if err != nil {
		return nil, err
	}
	if ct, ok := task.(*ClassifyTask); ok {
		if err := ct.check(); err != nil {
			return nil, err
		}
		if cfg.EvalBatch == 0 {
			cfg.EvalBatch = 500
		}
	}
	if cfg.EvalBatch == 0 {
		cfg.EvalBatch = cfg.BatchSize
	}
	if spe := task.StepsPerEpoch(cfg.BatchSize); cfg.Steps > 0 && spe > 0 {
		return nil, fmt.Errorf("qat: Config.Steps is for a task that streams batches; this one has %d steps per epoch", spe)
	}
	if p != nil && p.Net != net {
		return nil, fmt.Errorf("qat: the Prepared model is not the task's network")
	}
	opt, err := newOptimizerClip(cfg.Optimizer, cfg.Momentum, cfg.Beta2, cfg.WeightDecay, cfg.ClipNorm)
	if err != nil {
		return nil, err
	}
	t := &Trainer{Task: task, Net: net, Prep: p, Cfg: cfg, opt: opt, decay: map[string]bool{}}
	for _, g := range net.Groups() {
		if g.Weighted() {
			t.decay["param/"+g.Op+"."+string(graph.RoleWeight)] = true
		}
	}
	return t, nil
}

// networkOf returns task's network, or an error for a missing task or network.
func networkOf(task Task) (graph.Network, error) {
	if task == nil || task.Network() == nil || reflect.ValueOf(task.Network()).IsNil() {
		return nil, fmt.Errorf("qat: no task or no network to train")
	}
	return task.Network(), nil
}

// Close releases the graphs' machines; the next use rebuilds them.
func (t *Trainer) Close() {
	t.train.close()
	t.eval.close()
	t.train, t.eval = nil, nil
}

// build makes a graph of the task with the loss: train adds the gradients (and uses batch
// statistics until the BN freeze), eval freezes the activation observers.
func (t *Trainer) build(train, freezeBN bool, batch int) (*taskRun, error) {
	o := BuildOptions{Batch: batch, Train: train, FreezeBN: freezeBN}
	r := &taskRun{freeze: freezeBN}
	if t.Prep != nil {
		r.nq = t.Prep.Quantizer()
		if !train {
			r.nq = t.Prep.EvalQuantizer()
		}
		o.Quant = r.nq
		o.FoldBN = !t.Cfg.NoFoldBN
	}
	g, err := t.Task.Build(o)
	if err != nil {
		return nil, err
	}
	r.g = g
	if r.loss, err = t.Cfg.loss()(g.Out, g.Target); err != nil {
		return nil, err
	}
	if train {
		var wrt G.Nodes
		for _, p := range t.Net.Params() {
			if n, ok := g.Params[p.Name]; ok && p.Trainable {
				r.names = append(r.names, "param/"+p.Name)
				wrt = append(wrt, n)
			}
		}
		if r.nq != nil {
			for _, s := range t.Prep.Sites {
				q, ok := r.nq.Qs[s.Name]
				if !ok {
					continue
				}
				for _, l := range []struct {
					suf string
					n   *G.Node
				}{{".log_scale", q.LogScale}, {".offset", q.Offset}, {".alpha", q.Alpha}} {
					if l.n != nil {
						r.names = append(r.names, "quant/"+s.Name+l.suf)
						wrt = append(wrt, l.n)
					}
				}
			}
		}
		nParams := len(wrt)
		if t.Hook != nil {
			wrt = append(wrt, t.Hook.Nodes()...)
		}
		gs, err := G.Grad(r.loss, wrt...)
		if err != nil {
			return nil, fmt.Errorf("qat: gradients: %w", err)
		}
		r.grads = gs[:nParams]
		t.bindValues(r)
	}
	r.vm = G.NewTapeMachine(g.G)
	return r, nil
}

// bindValues looks up the tensors the optimizer updates (learnables are created by the first
// graph built, or by a checkpoint).
func (t *Trainer) bindValues(r *taskRun) {
	learn := map[string][]float32{}
	if t.Prep != nil {
		for _, l := range t.Prep.Learnables() {
			learn["quant/"+l.Name] = f32s(l.Value)
		}
	}
	r.values = make([][]float32, len(r.names))
	for i, name := range r.names {
		if p, ok := strings.CutPrefix(name, "param/"); ok {
			r.values[i] = f32s(t.Net.Param(p).Value)
		} else {
			r.values[i] = learn[name]
		}
	}
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

func (r *taskRun) run() error {
	r.vm.Reset()
	return opError(r.vm.RunAll())
}

// correct counts argmax(row) == labels[i] over the first n rows of the output.
func correct(out G.Value, labels []int, n int) int {
	if len(labels) == 0 {
		return 0
	}
	d := out.Data().([]float32)
	k := len(d) / len(labels)
	c := 0
	for i := 0; i < n; i++ {
		row := d[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == labels[i] {
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

// stepsPerEpoch is the task's, or Config.Steps for a stream.
func (t *Trainer) stepsPerEpoch() int64 {
	if spe := t.Task.StepsPerEpoch(t.Cfg.BatchSize); spe > 0 {
		return spe
	}
	return t.Cfg.Steps
}

// Fit trains for the remaining epochs (Cfg.Epochs - t.Epoch), evaluating on eval (when not nil)
// after each epoch and writing a checkpoint when Cfg.CheckpointDir is set. Before the first
// step of a prepared network it initialises the quantizers (InitQuantizers) unless that was done.
func (t *Trainer) Fit(eval EvalSet) error {
	c := &t.Cfg
	B := c.BatchSize
	spe := t.stepsPerEpoch()
	if spe == 0 {
		if t.Task.StepsPerEpoch(B) == 0 && c.Steps == 0 {
			return fmt.Errorf("qat: the task streams batches: set Config.Steps")
		}
		return fmt.Errorf("qat: no full training batch of %d examples", B)
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
		if err := t.InitQuantizers(); err != nil {
			return err
		}
	}
	t.qatInit = true
	logEvery := c.LogEvery
	if logEvery <= 0 {
		logEvery = int(max(spe/10, 1))
	}
	stop := c.Epochs
	if c.StopAfter > 0 {
		stop = min(stop, t.Epoch+c.StopAfter)
	}
	for t.Epoch < stop {
		ep := t.Epoch
		start := time.Now()
		var sumLoss float64
		var nCorrect, nRows int
		for s := int64(0); s < spe; s++ {
			t.applySchedules()
			if err := t.ensureTrain(); err != nil {
				return err
			}
			lr := lrAt(c, t.Step, total, spe)
			loss, gn, err := t.trainStep(lr)
			if err != nil {
				return fmt.Errorf("%w (epoch %d)", err, ep+1)
			}
			g := t.train.g
			sumLoss += loss
			nCorrect += correct(g.Out.Value(), g.Labels, len(g.Labels))
			nRows += len(g.Labels)
			if (s+1)%int64(logEvery) == 0 || s+1 == spe {
				acc := float64(nCorrect) / float64(max(nRows, 1))
				t.Curve = append(t.Curve, CurvePoint{Step: t.Step, Epoch: float64(ep) + float64(s+1)/float64(spe),
					TrainLoss: sumLoss / float64(s+1), TrainAcc: acc})
				el := time.Since(start).Seconds()
				rate := float64(s+1) * float64(B) / el
				eta := time.Duration(float64(total-t.Step) * float64(B) / rate * float64(time.Second))
				c.Logger.WithFields(logrus.Fields{
					"epoch": fmt.Sprintf("%d/%d", ep+1, c.Epochs), "step": fmt.Sprintf("%d/%d", s+1, spe),
					"loss": fmt.Sprintf("%.4f", sumLoss/float64(s+1)), "acc": fmt.Sprintf("%.4f", acc),
					"ex/s": fmt.Sprintf("%.0f", rate), "eta": eta.Round(time.Second).String(), "lr": fmt.Sprintf("%.3g", lr),
					"gnorm": fmt.Sprintf("%.3g", gn),
				}).Info("train")
			}
		}
		secs := time.Since(start).Seconds()
		st := EpochStats{Epoch: ep + 1, Step: t.Step, LR: lrAt(c, t.Step-1, total, spe),
			TrainLoss: sumLoss / float64(spe), TrainAcc: float64(nCorrect) / float64(max(nRows, 1)), Seconds: secs}
		if eval != nil {
			m, err := t.Evaluate(eval)
			if err != nil {
				return err
			}
			st.TestAcc, st.TestLoss = m.Acc, m.Loss
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

// trainStep runs one forward/backward pass on training batch t.Step and applies the optimizer
// (and the hook). It returns the loss and the global gradient norm, or ErrNonFinite (wrapped)
// without touching parameters when the loss or a gradient is not finite.
func (t *Trainer) trainStep(lr float64) (loss, gnorm float64, err error) {
	r := t.train
	if err := t.Task.Feed(r.g, BatchID{Index: t.Step, Seed: t.Cfg.Seed}); err != nil {
		return 0, 0, err
	}
	if r.g.BeforeTrain != nil {
		r.g.BeforeTrain(rand.New(rand.NewPCG(t.Cfg.Seed^0xd20b, uint64(t.Step))))
	}
	if err := r.run(); err != nil {
		if errors.Is(err, quant.ErrNonFinite) || strings.Contains(err.Error(), "non-finite") {
			return 0, 0, fmt.Errorf("%w: step %d: %v", ErrNonFinite, t.Step, err)
		}
		return 0, 0, fmt.Errorf("qat: step %d: %w", t.Step, err)
	}
	loss = scalar(r.loss)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, 0, fmt.Errorf("%w: loss %v at step %d", ErrNonFinite, loss, t.Step)
	}
	gs := make([][]float32, len(r.grads))
	for i, g := range r.grads {
		gs[i] = g.Value().Data().([]float32)
	}
	gnorm = t.opt.beginStep(gs)
	if math.IsNaN(gnorm) || math.IsInf(gnorm, 0) {
		for i, g := range gs {
			if !finite(g) {
				return 0, 0, fmt.Errorf("%w: gradient of %s at step %d", ErrNonFinite, r.names[i], t.Step)
			}
		}
		return 0, 0, fmt.Errorf("%w: gradient norm %v at step %d", ErrNonFinite, gnorm, t.Step)
	}
	if r.g.AfterTrain != nil {
		r.g.AfterTrain()
	}
	for i, name := range r.names {
		t.opt.update(name, r.values[i], gs[i], lr, t.decay[name])
	}
	if t.Hook != nil {
		if err := t.Hook.Step(lr / t.Cfg.LR); err != nil {
			return 0, 0, fmt.Errorf("qat: step %d: %w", t.Step, err)
		}
	}
	t.Step++
	return loss, gnorm, nil
}

func scalar(n *G.Node) float64 {
	switch v := n.Value().Data().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}

// Evaluate returns the mean loss and accuracy of the network (fake-quantized when prepared) on
// set, with running BN statistics and frozen activation observers.
func (t *Trainer) Evaluate(set EvalSet) (Metrics, error) {
	if err := t.ensureEval(); err != nil {
		return Metrics{}, err
	}
	r := t.eval
	nb := set.Batches(r.g.Batch)
	if nb < 1 {
		return Metrics{}, fmt.Errorf("qat: empty evaluation set")
	}
	var nc, n, rows int
	var sl float64
	for i := 0; i < nb; i++ {
		valid, err := set.Fill(r.g, i)
		if err != nil {
			return Metrics{}, err
		}
		if err := r.run(); err != nil {
			return Metrics{}, err
		}
		perEx := len(r.g.Labels) / r.g.Batch
		nc += correct(r.g.Out.Value(), r.g.Labels, valid*perEx)
		rows += valid * perEx
		sl += scalar(r.loss) * float64(valid)
		n += valid
	}
	m := Metrics{Loss: sl / float64(n)}
	if rows > 0 {
		m.Acc = float64(nc) / float64(rows)
	}
	return m, nil
}

func (t *Trainer) ensureEval() error {
	if t.eval != nil {
		return nil
	}
	var err error
	t.eval, err = t.build(false, true, t.Cfg.EvalBatch)
	return err
}

// Forward runs the evaluation graph (see Evaluate) on batch i of set and returns the graph, whose
// Out and other nodes hold this batch's values until the next run, and the batch's loss.
func (t *Trainer) Forward(set EvalSet, i int) (*Graph, float64, error) {
	if err := t.ensureEval(); err != nil {
		return nil, 0, err
	}
	if _, err := set.Fill(t.eval.g, i); err != nil {
		return nil, 0, err
	}
	if err := t.eval.run(); err != nil {
		return nil, 0, err
	}
	return t.eval.g, scalar(t.eval.loss), nil
}

// Checkpoint returns the network's parameters and architecture, the quantizer state (when
// prepared), the optimizer state, step, epoch, seed and history as a checkpoint, for a caller
// that adds metadata or tensors of its own before saving it with graph.SaveCheckpoint.
func (t *Trainer) Checkpoint() *graph.Checkpoint {
	c := &graph.Checkpoint{Step: t.Step, Epoch: t.Epoch, Seed: t.Cfg.Seed, Meta: map[string]string{}}
	t.Net.SaveState(c)
	if t.Prep != nil {
		t.Prep.SaveState(c)
	}
	t.opt.save(c)
	h, _ := json.Marshal(t.History)
	c.Meta["history"] = string(h)
	c.Meta[MetaModel] = t.Net.Arch().Name
	c.Meta["qat_init"] = fmt.Sprint(t.qatInit)
	return c
}

// SaveCheckpoint writes Checkpoint() to path atomically.
func (t *Trainer) SaveCheckpoint(path string) error {
	return graph.SaveCheckpoint(path, t.Checkpoint())
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint (parameters, BN statistics,
// quantizer state, optimizer state when present, step, epoch, seed, history); Fit then continues
// with the same data order, optimizer state and schedules. A checkpoint of another architecture
// is an error.
func (t *Trainer) LoadCheckpoint(path string) error {
	c, err := graph.LoadCheckpoint(path)
	if err != nil {
		return err
	}
	want := t.Net.Arch()
	if m := c.Meta[MetaModel]; m != "" && m != want.Name {
		return fmt.Errorf("qat: checkpoint %s is for model %q, not %q", path, m, want.Name)
	}
	if a, err := graph.ArchOf(c); err == nil && (a.Type != want.Type || a.Name != want.Name ||
		(a.LM != nil && want.LM != nil && !reflect.DeepEqual(*a.LM, *want.LM))) {
		return fmt.Errorf("qat: checkpoint %s holds another architecture (%s %q %+v)", path, a.Type, a.Name, a.LM)
	}
	if err := t.Net.LoadState(c); err != nil {
		return err
	}
	if t.Prep != nil {
		if err := t.Prep.LoadState(c); err != nil {
			return err
		}
	}
	if _, ok := c.Meta["opt/t"]; ok { // a checkpoint without optimizer state restarts the moments
		if err := t.opt.load(c); err != nil {
			return err
		}
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
