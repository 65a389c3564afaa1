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
