package main

import (
	"fmt"
	"time"

	"github.com/qatgo/qatgo/data/text"
	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/infer/textgen"
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
)

// textOptions are eval's settings for a language model on text.
type textOptions struct {
	path, split string
	maxBytes, n int
	rows        int // prefill batch
	threads     int
}

// loadEvalText selects the text of -text/-split/-max-bytes (see eval's help) and describes it.
func loadEvalText(o textOptions) ([]byte, string, error) {
	opts := text.Options{MaxBytes: o.maxBytes}
	var c *text.Corpus
	var err error
	name := o.path
	if o.path == "goroot" {
		c, err = text.LoadGoSource(opts)
		name = "Go standard library source"
	} else {
		c, err = text.Load(o.path, opts)
	}
	if err != nil {
		return nil, "", err
	}
	split := false // files split by path hash (joined with newlines), else one cut of the bytes
	nVal := 0
	for _, f := range c.Files {
		if f.Val {
			split = true
			nVal++
		}
	}
	var b []byte
	switch o.split {
	case "train":
		b = c.Train
	case "val":
		b = c.Val
	default:
		b = append(append([]byte(nil), c.Train...), c.Val...)
		if split && len(c.Train) > 0 && len(c.Val) > 0 {
			b = append(append(append([]byte(nil), c.Train...), '\n'), c.Val...)
		}
	}
	desc := fmt.Sprintf("%s, split %s (%d files", safe(name), o.split, len(c.Files))
	if split {
		desc += fmt.Sprintf(", %d held out", nVal)
	} else {
		desc += ", cut at 90% of the bytes"
	}
	return b, desc + ")", nil
}

// evalSegment is the number of bytes (rounded down to whole windows) scored between progress checks.
var evalSegment = 64 << 10

// progressEvery is how often a long evaluation reports its progress on stderr.
const progressEvery = 5 * time.Second

func evalText(e *env, m *qmodel.Model, o textOptions, lo infer.LoadOptions, budget int64) error {
	lm, err := loadLMModel("eval -text", m, lo)
	if err != nil {
		return err
	}
	if err := needByteLevel(lm); err != nil {
		return err
	}
	b, desc, err := loadEvalText(o)
	if err != nil {
		return err
	}
	if o.n > 0 && o.n < len(b) {
		b = b[:o.n]
	}
	if len(b) < 2 {
		return fmt.Errorf("the text (%s) has %d bytes: at least 2 are needed to predict one", desc, len(b))
	}
	opt, err := lmSessionOptions(e, lm, o.rows, budget)
	if err != nil {
		return err
	}
	s := lm.NewSessionWith(opt)
	toks := make([]int, len(b))
	for i, c := range b {
		toks[i] = int(c)
	}
	// Score in segments of whole windows (segments share their boundary byte, so the windows and
	// the result are those of one ScoreTokens call), reporting progress on long runs.
	ctx := lm.ContextLength()
	seg := max(1, evalSegment/ctx) * ctx
	var sc textgen.Score
	start, last := time.Now(), time.Now()
	for off := 0; off < len(toks)-1; off += seg {
		part, err := textgen.ScoreTokens(s, toks[off:min(off+seg+1, len(toks))])
		if err != nil {
			return err
		}
		sc = sc.Add(part)
		if time.Since(last) > progressEvery {
			last = time.Now()
			fmt.Fprintf(e.stderr, "eval: %d of %d bytes, %.4f bits/byte so far\n", off+seg, len(toks)-1, sc.BitsPerToken())
		}
	}
	el := time.Since(start)
	w := e.stdout
	fmt.Fprintf(w, "model     %s\n", safe(lm.QModel().Name))
	fmt.Fprintf(w, "text      %s: %d bytes, %d predicted, windows of %d bytes\n", desc, len(b), sc.Tokens, ctx)
	fmt.Fprintf(w, "bits/byte %.4f (perplexity %.4f per byte, loss %.4f nats)\n", sc.BitsPerToken(), sc.Perplexity(), sc.Loss())
	fmt.Fprintf(w, "time      %.2f us/byte, %.0f bytes/s (prefill batch %d, %d threads, kernels %s)\n",
		float64(el.Nanoseconds())/1e3/float64(sc.Tokens), float64(sc.Tokens)/el.Seconds(), lm.PrefillRowsFor(opt), o.threads, kernels.Path())
	return nil
}
