package main

import (
	"fmt"

	"github.com/qatgo/qatgo/infer"
	"github.com/qatgo/qatgo/qmodel"
)

// byteVocab is the vocabulary of a byte-level language model: token i is byte i.
const byteVocab = 256

// loadLM reads and loads a language-model file for command cmd. A model that is not a language
// model gets an error that names the commands for it.
func loadLM(cmd, path string, lo infer.LoadOptions) (*infer.LM, error) {
	m, err := qmodel.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return loadLMModel(cmd, m, lo)
}

// loadLMModel is loadLM of a model already read.
func loadLMModel(cmd string, m *qmodel.Model, lo infer.LoadOptions) (*infer.LM, error) {
	if !m.IsLM() {
		return nil, fmt.Errorf("model %s is not a language model (it has no Embedding op): %s needs one; run, eval -data and bench take this model", safe(m.Name), cmd)
	}
	return infer.LoadLMWith(m, lo)
}

// needByteLevel checks that lm's tokens are bytes (vocabulary 256), which generate and eval -text
// assume: they have no other tokenizer.
func needByteLevel(lm *infer.LM) error {
	if v := lm.Vocab(); v != byteVocab {
		return fmt.Errorf("model %s has a vocabulary of %d tokens: only byte-level models (256 tokens, one per byte) can be fed text", safe(lm.QModel().Name), v)
	}
	return nil
}

// lmSessionOptions returns the session options for a prefill batch of rows, lowered to fit the
// memory budget (saying so on stderr) or an error when one row does not fit.
func lmSessionOptions(e *env, lm *infer.LM, rows int, budget int64) (infer.LMSessionOptions, error) {
	want := lm.PrefillRowsFor(infer.LMSessionOptions{PrefillRows: rows})
	fit := lm.MaxPrefillRowsWithin(budget, want)
	if fit == 0 {
		return infer.LMSessionOptions{}, fmt.Errorf("a session of model %s needs %d MiB (KV cache %d MiB for the context of %d), more than the memory budget of %d MiB: raise -max-memory if the machine has the memory",
			safe(lm.QModel().Name), mib(lm.SessionBytes(infer.LMSessionOptions{PrefillRows: 1})), mib(lm.KVCacheBytes()), lm.ContextLength(), budget>>20)
	}
	if fit < want {
		fmt.Fprintf(e.stderr, "note: a prefill batch of %d rows needs %d MiB, more than the memory budget of %d MiB (-max-memory): using %d rows\n",
			want, mib(lm.SessionBytes(infer.LMSessionOptions{PrefillRows: want})), budget>>20, fit)
	}
	return infer.LMSessionOptions{PrefillRows: fit}, nil
}
