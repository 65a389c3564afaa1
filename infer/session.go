package infer

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// MaxBatch bounds the batch size of one call.
const MaxBatch = 1 << 20

// plan assigns activation tensors to buffers ("slots"). slot[t] is -1 for tensors without a
// buffer (constants, the caller's float32/uint8 input).
type plan struct {
	slot    []int
	isFloat []bool // per slot
	size    []int  // per slot, elements per sample
}

// makePlan assigns buffers greedily in op order: an op's output takes the smallest free buffer
// of its type that is large enough (or grows the largest free one, or makes a new one), and inputs
// whose last use is this op are freed after the output is placed (so an op never reads and writes
// the same buffer). With keepAll every tensor gets its own buffer.
func (md *Model) makePlan(keepAll bool) plan {
	m := md.qm
	p := plan{slot: make([]int, len(m.Tensors))}
	for i := range p.slot {
		p.slot[i] = -1
	}
	last := make([]int, len(m.Tensors))
	for i := range last {
		last[i] = -1
	}
	for i := range md.steps {
		st := &md.steps[i]
		last[st.in] = i
		if st.in2 >= 0 {
			last[st.in2] = i
		}
	}
	const forever = math.MaxInt
	last[md.output] = forever
	if md.int8Out >= 0 {
		last[md.int8Out] = forever
	}
	var free []int
	alloc := func(t int) {
		tt := &m.Tensors[t]
		fl := tt.DType == qmodel.Float32
		need := tt.NumElements()
		best := -1
		if !keepAll {
			for j, sl := range free {
				if p.isFloat[sl] != fl {
					continue
				}
				if best < 0 {
					best = j
					continue
				}
				b := free[best]
				bs, ss := p.size[b], p.size[sl]
				switch {
				case ss >= need && (bs < need || ss < bs): // fits, and tighter or the first that fits
					best = j
				case bs < need && ss < need && ss > bs: // none fits yet: prefer the largest
					best = j
				}
			}
		}
		if best < 0 {
			p.slot[t] = len(p.size)
			p.size = append(p.size, need)
			p.isFloat = append(p.isFloat, fl)
			return
		}
		sl := free[best]
		free = append(free[:best], free[best+1:]...)
		p.size[sl] = max(p.size[sl], need)
		p.slot[t] = sl
	}
	release := func(t int) {
		if p.slot[t] >= 0 && !keepAll {
			free = append(free, p.slot[t])
		}
	}
	if m.Tensors[md.input].DType == qmodel.Int8 {
		alloc(md.input)
	}
	early := make([]bool, len(m.Tensors)) // pool outputs written by a fused conv
	for i := range md.steps {
		st := &md.steps[i]
		if st.kind == qmodel.OpReshape && !keepAll && last[st.in] == i && p.slot[st.in] >= 0 &&
			m.Tensors[st.in].DType == m.Tensors[st.out].DType {
			// The reshape's output takes over its input's buffer: no copy (step checks).
			p.slot[st.out] = p.slot[st.in]
			continue
		}
		if !early[st.out] {
			alloc(st.out)
		}
		if st.pool != nil {
			// The fused conv writes the pool's output: it must not share a buffer with the
			// conv's input.
			alloc(st.poolOut)
			early[st.poolOut] = true
		}
		if last[st.out] < 0 {
			release(st.out) // never read
		}
		for _, t := range []int{st.in, st.in2} {
			if t >= 0 && last[t] == i && (t != st.in2 || st.in2 != st.in) {
				release(t)
			}
		}
	}
	return p
}

// OpStat is the time spent in one op, summed over the calls since profiling was enabled.
type OpStat struct {
	Name  string
	Kind  qmodel.OpKind
	Calls int
	Total time.Duration
}

// Session holds the buffers of one inference stream. It is not safe for concurrent use; create one
// per goroutine with Model.NewSession. Slices returned by its Run methods belong to the Session and
// are valid until the next call.
//
// A batch runs in micro-batches of a few samples at a time through all ops (sized so that one
// micro-batch's activations stay in a core's cache), optionally split over several goroutines
// (SessionOptions.Threads).
type Session struct {
	md      *Model
	opt     SessionOptions
	plan    plan
	keepAll bool
	mb      int       // micro-batch size in samples
	batch   int       // capacity of the gathered outputs, in samples
	lanes   []lane    // lane 0 runs on the caller's goroutine, lane i>0 on worker i
	w       *workers  // nil for single-threaded sessions and after Close
	inF     []float32 // the caller's input during a run
	inU     []byte
	inI8    []int8
	outF    []float32 // gathered (and dequantized) float32 output
	outI8   []int8    // gathered int8 output of RunInt8
	prof    []OpStat
	ran     int // batch of the last successful run
	// Multi-lane runs: active lanes take chunks of at most chunk samples (take) from next,
	// up to runBatch.
	chunk, runBatch, active int
	next                    atomic.Int64
}

// lane is the state of one goroutine of a session: activation buffers for one micro-batch (laid
// out by the plan) and kernel scratch.
type lane struct {
	i8      [][]int8
	f32     [][]float32
	cap     int // samples the buffers hold
	lo, hi  int // the batch range of a single-lane run (multi-lane runs take chunks, see Session.next)
	b0, nb  int // the current micro-batch
	scratch []int8
	acc     []int32
	fsc     kernels.FusedScratch
	skip    *step // a pool step computed by the fused conv before it
	fused   bool  // the fused convolutions run in one pass in this micro-batch (see runLane)
}

// SessionOptions configure NewSessionWith.
type SessionOptions struct {
	// KeepIntermediate gives every tensor its own buffer holding the whole batch, so that
	// Int8Tensor can return any activation after a run (for parity checks and debugging). Uses
	// more memory and runs single-threaded without micro-batches.
	KeepIntermediate bool
	// Threads > 1 runs batches of at least 16 samples on up to Threads goroutines (the caller's
	// and Threads-1 workers owned by the session, each with its own buffers), which take chunks
	// from a shared counter until the batch is done (large ones first, down to 2 samples at the
	// end, so that the lanes finish together). After a batch the workers spin for up to 50 us
	// waiting for the next one, then sleep. Call Close when done: the workers live until then (an
	// unclosed session is never garbage collected). Results are identical to single-threaded runs. Profiling runs
	// single-threaded.
	Threads int
	// MaxBytes, when positive, bounds the bytes the session allocates for a batch (SessionBytes):
	// a run whose batch needs more is refused with an error before anything is allocated.
	MaxBytes int64
}

// MicroBatchBytes is the activation footprint that a micro-batch aims at (the sum of the planned
// buffers per sample times the micro-batch size): about a core's L2 share. NewSessionWith reads it;
// change it only before creating sessions, not concurrently with them.
var MicroBatchBytes = 256 << 10

// NewSession returns a single-threaded Session with buffer reuse between tensors.
func (md *Model) NewSession() *Session { return md.NewSessionWith(SessionOptions{}) }

// NewSessionWith returns a Session configured by opt.
func (md *Model) NewSessionWith(opt SessionOptions) *Session {
	s := &Session{md: md, plan: md.plan, keepAll: opt.KeepIntermediate, mb: MaxBatch, opt: opt}
	if opt.KeepIntermediate {
		s.plan = md.makePlan(true)
	} else {
		per := 0
		for i, n := range s.plan.size {
			if s.plan.isFloat[i] {
				n *= 4
			}
			per += n
		}
		s.mb = max(1, MicroBatchBytes/max(per, 1))
	}
	n := max(opt.Threads, 1)
	s.lanes = make([]lane, n)
	for i := range s.lanes {
		s.lanes[i] = lane{scratch: make([]int8, md.scratchN), acc: make([]int32, md.maxPoolC)}
	}
	if n > 1 {
		s.startWorkers(n)
	}
	return s
}

// Model returns the model the session runs.
func (s *Session) Model() *Model { return s.md }

// Close stops the session's worker goroutines (sessions created with Threads > 1); the session
// stays usable, single-threaded. Close is a no-op for single-threaded sessions and safe to repeat.
func (s *Session) Close() {
	if s.w != nil {
		s.w.stop()
		s.w = nil
	}
	s.lanes = s.lanes[:1]
}

// minChunk is the number of samples per lane below which a batch runs on fewer lanes: a batch of
// fewer than 2*minChunk samples runs on one.
const minChunk = 8

// lastChunk is the smallest number of samples a lane takes at a time in multi-lane runs (the
// last chunks of a batch; see Session.take).
const lastChunk = 2

// split assigns the batch to lanes, grows buffers where needed and returns the number of lanes used.
func (s *Session) split(batch int) int {
	nw := min(len(s.lanes), batch/minChunk)
	if s.keepAll || s.prof != nil || nw < 1 {
		nw = 1
	}
	// Several lanes take chunks of the batch from a shared counter (a lane slowed down by other
	// work on its core takes fewer); one lane runs the whole batch.
	s.chunk, s.runBatch, s.active = 0, batch, nw
	if nw > 1 {
		s.chunk = max(minChunk, min(s.mb, (batch+4*nw-1)/(4*nw)))
		s.next.Store(0)
	}
	for l := 0; l < nw; l++ {
		ln := &s.lanes[l]
		ln.lo, ln.hi = 0, batch
		need := min(s.mb, batch)
		if s.chunk > 0 {
			need = min(s.mb, s.chunk)
		}
		if need > ln.cap {
			ln.i8 = make([][]int8, len(s.plan.size))
			ln.f32 = make([][]float32, len(s.plan.size))
			for i, n := range s.plan.size {
				if s.plan.isFloat[i] {
					ln.f32[i] = make([]float32, n*need)
				} else {
					ln.i8[i] = make([]int8, n*need)
				}
			}
			ln.cap = need
		}
	}
	return nw
}

// ensure grows the gathered outputs to hold batch samples (1 <= batch <= MaxBatch).
func (s *Session) ensure(batch int) {
	if batch > s.batch {
		s.outF = make([]float32, s.md.outN*batch)
		if s.md.int8Out >= 0 {
			s.outI8 = make([]int8, s.md.qm.Tensors[s.md.int8Out].NumElements()*batch)
		}
		s.batch = batch
	}
}

// i8buf returns tensor t's buffer in lane ln (n elements per sample) for the current micro-batch.
func (ln *lane) i8buf(s *Session, t, n int) []int8 { return ln.i8[s.plan.slot[t]][:ln.nb*n] }

// f32buf returns tensor t's float32 data for lane ln's micro-batch: the caller's input, or a lane
// buffer.
func (ln *lane) f32buf(s *Session, t, n int) []float32 {
	if t == s.md.input {
		return s.inF[ln.b0*n : (ln.b0+ln.nb)*n]
	}
	return ln.f32[s.plan.slot[t]][:ln.nb*n]
}

// EnableProfile turns per-op timing on or off. When off (the default) the run loop does not read
// the clock.
func (s *Session) EnableProfile(on bool) {
	if !on {
		s.prof = nil
		return
	}
	if s.prof == nil {
		s.ResetProfile()
	}
}

// ResetProfile zeroes the per-op times (and enables profiling).
func (s *Session) ResetProfile() {
	s.prof = make([]OpStat, len(s.md.steps))
	for i := range s.md.steps {
		s.prof[i] = OpStat{Name: s.md.steps[i].name, Kind: s.md.steps[i].kind}
	}
}

// Profile returns a copy of the per-op times (nil when profiling is off).
func (s *Session) Profile() []OpStat { return append([]OpStat(nil), s.prof...) }

// How a run feeds its input and collects its output.
type runKind uint8

const (
	runFloat runKind = iota // Run: float32 in (quantized here for int8-input models), float32 out
	runUint8                // RunUint8: bytes in, float32 out
	runInt8                 // RunInt8: int8 in, int8 out, steps [first, last)
)

// job asks a worker to run its lane.
type job struct {
	kind     runKind
	from, to int
}

// exec runs steps [from, to) on the first nw lanes.
func (s *Session) exec(nw int, kind runKind, from, to int) {
	if nw > 1 {
		s.runLanes(nw, job{kind, from, to})
	} else {
		s.runLane(&s.lanes[0], job{kind, from, to})
	}
	if s.prof != nil {
		for i := from; i < to; i++ {
			s.prof[i].Calls++
		}
	}
}

// runLane runs the lane's part of the batch, micro-batch by micro-batch: input in, steps, output out.
func (s *Session) runLane(ln *lane, j job) {
	if s.chunk == 0 {
		s.runRange(ln, j, ln.lo, ln.hi)
		return
	}
	for {
		lo, hi, ok := s.take()
		if !ok {
			return
		}
		s.runRange(ln, j, lo, hi)
	}
}

// take claims the next chunk of a multi-lane run: a quarter of the remaining samples' share per
// lane, at most s.chunk (the lanes' buffer size) and at least lastChunk samples (guided
// self-scheduling). Large chunks first keep the per-chunk overhead low; small ones at the end
// let the lanes finish together, so that a lane that started late (a worker woken from sleep)
// or ran slower (its core busy with other work) delays the batch by at most a few samples.
func (s *Session) take() (lo, hi int, ok bool) {
	nw := int64(s.active)
	for {
		b := s.next.Load()
		rem := int64(s.runBatch) - b
		if rem <= 0 {
			return 0, 0, false
		}
		c := min(int64(s.chunk), max(lastChunk, (rem+4*nw-1)/(4*nw)), rem)
		if s.next.CompareAndSwap(b, b+c) {
			return int(b), int(b + c), true
		}
	}
}

// runRange runs samples [lo, hi) on lane ln, micro-batch by micro-batch.
func (s *Session) runRange(ln *lane, j job, lo, hi int) {
	md := s.md
	steps := md.steps
	for b := lo; b < hi; b += s.mb {
		ln.b0, ln.nb = b, min(s.mb, hi-b)
		// Input.
		switch {
		case j.kind == runInt8:
			n := md.qm.Tensors[md.int8In].NumElements()
			copy(ln.i8buf(s, md.int8In, n), s.inI8[ln.b0*n:(ln.b0+ln.nb)*n])
		case j.kind == runFloat && md.inType == qmodel.Int8:
			p := params(&md.qm.Tensors[md.input])
			dst := ln.i8buf(s, md.input, md.inN)
			kernels.QuantizeFloat32(dst, s.inF[ln.b0*md.inN:(ln.b0+ln.nb)*md.inN], p.Scale, p.ZeroPoint, -128, 127)
		}
		// Whether the kernels path fuses, read once per micro-batch so that every step of it
		// agrees even if kernels.SetPath runs meanwhile.
		ln.fused = !s.keepAll && md.fusedProbe != nil && md.fusedProbe.Fused()
		// Ops.
		if s.prof == nil {
			for i := j.from; i < j.to; i++ {
				s.step(&steps[i], ln)
			}
		} else {
			for i := j.from; i < j.to; i++ {
				t0 := time.Now()
				s.step(&steps[i], ln)
				s.prof[i].Total += time.Since(t0)
			}
		}
		// Output.
		if j.kind == runInt8 {
			n := md.qm.Tensors[md.int8Out].NumElements()
			copy(s.outI8[ln.b0*n:], ln.i8buf(s, md.int8Out, n))
			continue
		}
		n := md.outN
		d := s.outF[ln.b0*n : (ln.b0+ln.nb)*n]
		if md.outType == qmodel.Float32 {
			copy(d, ln.f32buf(s, md.output, n))
			continue
		}
		p := params(&md.qm.Tensors[md.output])
		for i, q := range ln.i8buf(s, md.output, n) {
			d[i] = quant.DequantizeValue(int32(q), p.Scale, p.ZeroPoint)
		}
	}
}

var errNonFinite = errors.New("infer: input contains NaN or Inf")

// Run runs a batch of float32 samples (batch*InputSize values, sample after sample) and returns
// batch*OutputSize float32 outputs (dequantized if the model ends in int8). The model input must
// be float32 or int8 (int8 inputs are quantized with the input's parameters); for uint8 inputs use
// RunUint8.
func (s *Session) Run(input []float32, batch int) ([]float32, error) {
	md := s.md
	if md.inType == qmodel.Uint8 {
		return nil, fmt.Errorf("infer: model input %q is uint8: pass raw bytes with RunUint8", md.qm.Tensors[md.input].Name)
	}
	if err := s.checkLen(len(input), batch); err != nil {
		return nil, err
	}
	if !kernels.AllFinite(input) {
		for i, v := range input {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w (element %d = %v)", errNonFinite, i, v)
			}
		}
	}
	s.inF = input
	s.exec(s.split(batch), runFloat, 0, len(md.steps))
	s.inF = nil
	s.ran = batch
	return s.outF[:md.outN*batch], nil
}

// RunUint8 runs a batch of uint8 samples (for example image bytes) through a model whose input is
// uint8 and returns the float32 outputs like Run.
func (s *Session) RunUint8(input []byte, batch int) ([]float32, error) {
	md := s.md
	if md.inType != qmodel.Uint8 {
		return nil, fmt.Errorf("infer: model input %q is %v, not uint8: use Run", md.qm.Tensors[md.input].Name, md.inType)
	}
	if err := s.checkLen(len(input), batch); err != nil {
		return nil, err
	}
	s.inU = input
	s.exec(s.split(batch), runUint8, 0, len(md.steps))
	s.inU = nil
	s.ran = batch
	return s.outF[:md.outN*batch], nil
}

// RunInt8 runs only the integer part of the model: input is the already quantized int8 input (the
// output of the model's input Quantize, or the model input itself if it is int8) and the result is
// the int8 tensor before the output Dequantize (or the int8 model output). See Int8Params for
// their quantization parameters.
func (s *Session) RunInt8(input []int8, batch int) ([]int8, error) {
	md := s.md
	if md.int8In < 0 || md.int8Out < 0 {
		return nil, errors.New("infer: the model has no single int8 entry and exit (it must start with Quantize of its input or take int8, and end with Dequantize or give int8)")
	}
	if err := s.checkLen(len(input), batch); err != nil {
		return nil, err
	}
	s.inI8 = input
	s.exec(s.split(batch), runInt8, md.first, md.last)
	s.inI8 = nil
	s.ran = batch
	return s.outI8[:md.qm.Tensors[md.int8Out].NumElements()*batch], nil
}

// Int8Params returns the quantization parameters of RunInt8's input and output.
func (md *Model) Int8Params() (in, out quant.Params, err error) {
	if md.int8In < 0 || md.int8Out < 0 {
		return in, out, errors.New("infer: the model has no single int8 entry and exit")
	}
	return params(&md.qm.Tensors[md.int8In]), params(&md.qm.Tensors[md.int8Out]), nil
}

// Int8Tensor returns the int8 values of the named activation from the last run (batch samples)
// and their parameters. The session must have been created with KeepIntermediate.
func (s *Session) Int8Tensor(name string) ([]int8, quant.Params, error) {
	md := s.md
	t := md.qm.TensorByName(name)
	if t < 0 {
		return nil, quant.Params{}, fmt.Errorf("infer: no tensor named %q", name)
	}
	tt := &md.qm.Tensors[t]
	if tt.DType != qmodel.Int8 || tt.IsConst() || s.plan.slot[t] < 0 {
		return nil, quant.Params{}, fmt.Errorf("infer: tensor %q is not an int8 activation held by the session", name)
	}
	if !s.keepAll {
		return nil, quant.Params{}, fmt.Errorf("infer: tensor %q: create the session with KeepIntermediate to read activations", name)
	}
	if s.ran == 0 {
		return nil, quant.Params{}, errors.New("infer: no run yet")
	}
	return s.lanes[0].i8buf(s, t, tt.NumElements()), params(tt), nil
}

// checkLen checks the batch size and the input length, then grows the output buffers: a wrong
// call allocates nothing.
func (s *Session) checkLen(n, batch int) error {
	if batch < 1 || batch > MaxBatch {
		return fmt.Errorf("infer: batch %d outside [1,%d]", batch, MaxBatch)
	}
	if want := s.md.inN * batch; n != want {
		return fmt.Errorf("infer: input has %d values, want batch %d x %d (per-sample shape %v)", n, batch, s.md.inN, s.md.qm.Tensors[s.md.input].Shape)
	}
	if s.opt.MaxBytes > 0 && batch > s.batch {
		if need := s.md.SessionBytes(batch, s.opt); need > s.opt.MaxBytes {
			return fmt.Errorf("infer: batch %d needs %d bytes of session buffers, more than the session's limit of %d (SessionOptions.MaxBytes): run smaller batches", batch, need, s.opt.MaxBytes)
		}
	}
	s.ensure(batch)
	return nil
}

// Predict runs one sample and returns the index of the largest output. It is safe for concurrent
// use (it takes a Session from the Model's pool).
func (md *Model) Predict(input []float32) (int, error) {
	s := md.getSession()
	defer md.pool.Put(s)
	out, err := s.Run(input, 1)
	if err != nil {
		return 0, err
	}
	return Argmax(out), nil
}

// PredictUint8 is Predict for models with uint8 input.
func (md *Model) PredictUint8(input []byte) (int, error) {
	s := md.getSession()
	defer md.pool.Put(s)
	out, err := s.RunUint8(input, 1)
	if err != nil {
		return 0, err
	}
	return Argmax(out), nil
}

func (md *Model) getSession() *Session {
	if s, ok := md.pool.Get().(*Session); ok {
		return s
	}
	return md.NewSession()
}

// Argmax returns the index of the largest value (the first on ties; -1 for an empty slice).
func Argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if best < 0 || x > v[best] {
			best = i
		}
	}
	return best
}

// step runs one op on lane ln's chunk of the batch.
func (s *Session) step(st *step, ln *lane) {
	if ln.nb == 0 {
		return
	}
	var src, dst []int8
	if st.kind != qmodel.OpQuantize && !st.shiftedIn {
		src = ln.i8buf(s, st.in, st.inN)
	}
	if st.kind != qmodel.OpDequantize {
		dst = ln.i8buf(s, st.out, st.outN)
	}
	nb := ln.nb
	switch st.kind {
	case qmodel.OpQuantize:
		if st.skipQuant && s.inU != nil && ln.fused {
			return // the fused conv reads the bytes
		}
		if st.table != nil {
			u := s.inU[ln.b0*st.inN : (ln.b0+nb)*st.inN]
			u = u[:len(dst)]
			for i, v := range u {
				dst[i] = st.table[v]
			}
			return
		}
		f := ln.f32buf(s, st.in, st.inN)
		if st.ortRound {
			quantizeHalfEven(dst, f[:len(dst)], st)
			return
		}
		kernels.QuantizeFloat32(dst, f[:len(dst)], st.scale, st.zero, -128, 127)
	case qmodel.OpDequantize:
		f := ln.f32buf(s, st.out, st.outN)
		f = f[:len(src)]
		for i, q := range src {
			f[i] = quant.DequantizeValue(int32(q), st.scale, st.zero)
		}
	case qmodel.OpConv2D:
		if st.ortM != nil {
			ortLinear(dst, src, nb, st)
			return
		}
		if st.shiftedIn && s.inU != nil && ln.fused {
			if st.pool != nil {
				dst = ln.i8buf(s, st.poolOut, st.pool.outN)
				ln.skip = st.pool
			}
			st.fc.RunShifted(dst, s.inU[ln.b0*st.inN:(ln.b0+nb)*st.inN], nb, &ln.fsc)
			return
		}
		if st.shiftedIn {
			src = ln.i8buf(s, st.in, st.inN)
		}
		if st.fc != nil && ln.fused {
			if st.pool != nil {
				dst = ln.i8buf(s, st.poolOut, st.pool.outN)
				ln.skip = st.pool
			}
			st.fc.Run(dst, src, nb, &ln.fsc)
			return
		}
		if st.depthwise {
			kernels.DepthwiseConv2DInt8(dst, src, nb, st.cs, st.inZero, st.dw, st.bias, &st.rq)
		} else {
			kernels.Conv2DInt8(dst, src, nb, st.cs, st.inZero, st.w, st.bias, &st.rq, ln.scratch)
		}
	case qmodel.OpFullyConnected:
		if st.ortM != nil {
			ortLinear(dst, src, nb, st)
			return
		}
		if st.w4 != nil {
			kernels.GEMMInt4(dst, st.outN, src, st.inN, nb, st.w4, st.bias, &st.rq)
			return
		}
		kernels.GEMMInt8(dst, st.outN, src, st.inN, nb, st.w, st.bias, &st.rq)
	case qmodel.OpMaxPool2D:
		if ln.skip == st {
			ln.skip = nil
			return
		}
		maxPool(dst, src, nb, st)
	case qmodel.OpAvgPool2D:
		avgPool(dst, src, nb, st, ln.acc[:st.c])
	case qmodel.OpAdd:
		addRun(dst, src, ln.i8buf(s, st.in2, st.inN), st)
	case qmodel.OpReshape:
		if len(dst) > 0 && &dst[0] == &src[0] {
			return // the plan gave the output its input's buffer
		}
		copy(dst, src)
	case qmodel.OpSoftmax:
		softmax(dst, src, st)
	}
}
