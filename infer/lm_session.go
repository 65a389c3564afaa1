package infer

import (
	"errors"
	"fmt"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// ErrContextFull is returned (wrapped) when a session has no room left for more tokens.
var ErrContextFull = errors.New("infer: context full")

// DefaultPrefillRows is the number of prompt tokens an LMSession runs through the model at once
// (as one GEMM per linear layer) unless LMSessionOptions.PrefillRows says otherwise.
const DefaultPrefillRows = 32

// LMSessionOptions configure NewSessionWith.
type LMSessionOptions struct {
	// PrefillRows is the largest number of tokens run as one batch (0: DefaultPrefillRows, capped
	// at the context length). Activation buffers hold this many rows.
	PrefillRows int
	// Threads is the number of goroutines a decode step may use for one linear layer (the
	// output channels split between them; layers below 2^16 multiply-adds stay on the calling
	// goroutine). 0 or 1: the calling goroutine only. The results do not depend on it.
	Threads int
}

// LMSession is one generation stream of an LM: its KV cache (allocated once, for the full context)
// and activation buffers. It is not safe for concurrent use. Slices of logits it returns belong
// to the session and are valid until the next call.
//
// After the first call (warm-up of the kernels' free lists) Prefill and Decode do not allocate.
type LMSession struct {
	lm      *LM
	rows    int
	threads int
	pos     int
	i8      [][]int8
	i32     [][]int32
	f32     [][]float32
	kc, vc  [][]int8
	scratch []int32
	acc64   []int64 // attention: int64 sums of one head
	q16     []int16 // attention: one query head minus its zero point
	gemvBuf []int32 // kernels.GEMV scratch
	toks    []int
	// lastRows is the number of rows of the last run (Activation)
	lastRows int
}

// NewSession returns a session with the default options.
func (lm *LM) NewSession() *LMSession { return lm.NewSessionWith(LMSessionOptions{}) }

// NewSessionWith returns a session configured by opt.
func (lm *LM) NewSessionWith(opt LMSessionOptions) *LMSession {
	rows := opt.PrefillRows
	if rows <= 0 {
		rows = DefaultPrefillRows
	}
	rows = min(rows, lm.ctx)
	s := &LMSession{lm: lm, rows: rows, threads: max(opt.Threads, 1)}
	n := len(lm.width)
	s.i8, s.i32, s.f32 = make([][]int8, n), make([][]int32, n), make([][]float32, n)
	for t, w := range lm.width {
		switch lm.kind[t] {
		case bufI8:
			s.i8[t] = make([]int8, rows*w)
		case bufI32:
			s.i32[t] = make([]int32, rows*w)
		case bufF32:
			s.f32[t] = make([]float32, rows*w)
		}
	}
	for i := range lm.steps {
		if a := lm.steps[i].att; a != nil {
			sz := a.kvHeads * a.maxSeq * a.hd
			s.kc = append(s.kc, make([]int8, sz))
			s.vc = append(s.vc, make([]int8, sz))
		}
	}
	s.scratch = make([]int32, lm.scratchN)
	s.acc64 = make([]int64, lm.maxHD)
	s.q16 = make([]int16, lm.maxHD)
	s.gemvBuf = make([]int32, lm.gemvScratch)
	s.toks = make([]int, rows)
	return s
}

// Reset empties the context (the KV cache is overwritten as positions are reused).
func (s *LMSession) Reset() { s.pos = 0 }

// Pos returns the number of tokens in the context.
func (s *LMSession) Pos() int { return s.pos }

// Room returns how many more tokens fit in the context.
func (s *LMSession) Room() int { return s.lm.ctx - s.pos }

// LM returns the session's model.
func (s *LMSession) LM() *LM { return s.lm }

func (s *LMSession) check(tokens []int) error {
	if len(tokens) > s.Room() {
		return fmt.Errorf("%w: %d tokens at position %d exceed the context length %d", ErrContextFull, len(tokens), s.pos, s.lm.ctx)
	}
	return s.checkTokens(tokens)
}

// checkTokens returns an error for a token id outside the vocabulary.
func (s *LMSession) checkTokens(tokens []int) error {
	for i, t := range tokens {
		if t < 0 || t >= s.lm.vocab {
			return fmt.Errorf("infer: token %d at index %d outside the vocabulary [0,%d)", t, i, s.lm.vocab)
		}
	}
	return nil
}

// Decode appends one token and returns the logits that predict the next one.
func (s *LMSession) Decode(token int) ([]float32, error) {
	s.toks[0] = token
	if err := s.check(s.toks[:1]); err != nil {
		return nil, err
	}
	s.run(s.toks[:1])
	return s.f32[s.lm.logits][:s.lm.vocab], nil
}

// Prefill appends the tokens (in batches of up to PrefillRows, each linear layer one GEMM) and
// returns the logits after the last one. An empty slice is an error; so is a slice that does not
// fit in the remaining context (nothing is appended then).
func (s *LMSession) Prefill(tokens []int) ([]float32, error) {
	var last []float32
	err := s.PrefillEach(tokens, func(_ int, l []float32) { last = l })
	return last, err
}

// PrefillEach is Prefill calling fn with the logits after every token (index into tokens); the
// slice passed to fn is valid only during the call.
func (s *LMSession) PrefillEach(tokens []int, fn func(i int, logits []float32)) error {
	if len(tokens) == 0 {
		return errors.New("infer: prefill of an empty token sequence")
	}
	if err := s.check(tokens); err != nil {
		return err
	}
	v := s.lm.vocab
	for o := 0; o < len(tokens); o += s.rows {
		chunk := tokens[o:min(o+s.rows, len(tokens))]
		s.run(chunk)
		if fn != nil {
			out := s.f32[s.lm.logits]
			for r := range chunk {
				fn(o+r, out[r*v:(r+1)*v])
			}
		}
	}
	return nil
}

// run executes every op on len(toks) rows at positions s.pos.. and advances the position.
func (s *LMSession) run(toks []int) {
	rows := len(toks)
	for i := range s.lm.steps {
		s.step(&s.lm.steps[i], toks, rows)
	}
	s.pos += rows
	s.lastRows = rows
}

// step executes one op on rows rows at positions s.pos.. (toks: the token ids, for an Embedding).
func (s *LMSession) step(st *lmStep, toks []int, rows int) {
	in, out := st.inN, st.outN
	switch st.kind {
	case qmodel.OpEmbedding:
		dst := s.i8[st.out]
		for r, t := range toks {
			if st.fast != nil {
				embeddingRowFast(dst[r*out:(r+1)*out], st, t, s.scratch)
			} else {
				embeddingRow(dst[r*out:(r+1)*out], st, t)
			}
		}
	case qmodel.OpRMSNorm:
		src, dst := s.i8[st.in], s.i8[st.out]
		for r := 0; r < rows; r++ {
			if st.fast != nil {
				rmsNormRowFast(dst[r*out:(r+1)*out], src[r*in:(r+1)*in], st)
			} else {
				rmsNormRow(dst[r*out:(r+1)*out], src[r*in:(r+1)*in], st)
			}
		}
	case qmodel.OpLinear:
		l := &st.lin
		if rows == 1 {
			l.gemv.Run(s.i8[st.out], s.i8[st.in], s.gemvBuf, s.threads)
		} else if l.w4 != nil {
			kernels.GEMMInt4(s.i8[st.out], l.n, s.i8[st.in], l.k, rows, l.w4, l.bias, &l.rq)
		} else {
			kernels.GEMMInt8(s.i8[st.out], l.n, s.i8[st.in], l.k, rows, l.w8, l.bias, &l.rq)
		}
	case qmodel.OpLMHead:
		l := &st.lin
		if rows == 1 {
			l.gemv.RunInt32(s.i32[st.out], s.i8[st.in], s.gemvBuf, s.threads)
		} else if l.w4 != nil {
			kernels.GEMMInt4Int32(s.i32[st.out], l.n, s.i8[st.in], l.k, rows, l.w4, l.bias)
		} else {
			kernels.GEMMInt8Int32(s.i32[st.out], l.n, s.i8[st.in], l.k, rows, l.w8, l.bias)
		}
	case qmodel.OpRoPE:
		src, dst := s.i8[st.in], s.i8[st.out]
		for r := 0; r < rows; r++ {
			if st.fast != nil {
				ropeRowFast(dst[r*out:(r+1)*out], src[r*in:(r+1)*in], st, s.pos+r, s.scratch)
			} else {
				ropeRow(dst[r*out:(r+1)*out], src[r*in:(r+1)*in], st, s.pos+r)
			}
		}
	case qmodel.OpAttention:
		a := st.att
		kc, vc := s.kc[a.cacheIndex], s.vc[a.cacheIndex]
		kvN := a.kvHeads * a.hd
		k, v := s.i8[st.in2], s.i8[st.in3]
		for r := 0; r < rows; r++ {
			cacheWrite(kc, vc, k[r*kvN:(r+1)*kvN], v[r*kvN:(r+1)*kvN], a, s.pos+r)
		}
		q, dst := s.i8[st.in], s.i8[st.out]
		for r := 0; r < rows; r++ {
			if st.fast != nil {
				attentionRowFast(dst[r*out:(r+1)*out], q[r*in:(r+1)*in], st, kc, vc, s.pos+r, s.scratch, s.acc64, s.q16, s.scratch[2*a.maxSeq:])
			} else {
				attentionRow(dst[r*out:(r+1)*out], q[r*in:(r+1)*in], st, kc, vc, s.pos+r, s.scratch, s.acc64, s.q16)
			}
		}
	case qmodel.OpSwiGLU:
		g, u, dst := s.i8[st.in], s.i8[st.in2], s.i8[st.out]
		for r := 0; r < rows; r++ {
			if st.fast != nil {
				swigluRowFast(dst[r*out:(r+1)*out], g[r*in:(r+1)*in], u[r*in:(r+1)*in], st, s.scratch)
			} else {
				swigluRow(dst[r*out:(r+1)*out], g[r*in:(r+1)*in], u[r*in:(r+1)*in], st)
			}
		}
	case qmodel.OpHadamard:
		src, dst := s.i8[st.in], s.i8[st.out]
		for r := 0; r < rows; r++ {
			if st.fast != nil {
				hadamardRowFast(dst[r*out:(r+1)*out], src[r*in:(r+1)*in], st, s.scratch)
			} else {
				hadamardRow(dst[r*out:(r+1)*out], src[r*in:(r+1)*in], st, s.scratch)
			}
		}
	case qmodel.OpAdd:
		a, b, dst := s.i8[st.in], s.i8[st.in2], s.i8[st.out]
		if st.fast != nil {
			lmAddFast(dst[:rows*out], a[:rows*in], b[:rows*in], st, s.scratch)
		} else {
			lmAdd(dst[:rows*out], a[:rows*in], b[:rows*in], st)
		}
	case qmodel.OpDequantize:
		dst := s.f32[st.out][:rows*out]
		if st.deqFromInt8 {
			for j, q := range s.i8[st.in][:rows*in] {
				dst[j] = st.deqS * float32(int32(q)-st.zIn)
			}
		} else {
			src := s.i32[st.in]
			for r := 0; r < rows; r++ {
				kernels.DequantizeInt32(dst[r*out:(r+1)*out], src[r*in:r*in+len(st.deq)], st.deq)
			}
		}
	}
}
