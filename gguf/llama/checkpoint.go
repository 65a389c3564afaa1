package llama

import (
	"encoding/base64"
	"fmt"

	"github.com/qatgo/qatgo/gguf"
	"github.com/qatgo/qatgo/graph"
)

// MetaCheckpointKey is the checkpoint metadata key that carries a GGUF file's kept metadata (its
// tokenizer) through a qatgo checkpoint: the base64 of a GGUF file holding only those keys, so
// every value keeps its exact GGUF type.
const MetaCheckpointKey = "gguf.meta"

// PutMeta stores w.Meta in c.Meta[MetaCheckpointKey] (nothing when w.Meta is empty).
func PutMeta(c *graph.Checkpoint, w *Weights) error {
	if len(w.Meta) == 0 {
		return nil
	}
	f := &gguf.File{}
	for _, k := range sortedKeys(w.Meta) {
		f.Set(k, w.Meta[k])
	}
	b, err := f.Encode()
	if err != nil {
		return fmt.Errorf("llama: metadata: %w", err)
	}
	if c.Meta == nil {
		c.Meta = map[string]string{}
	}
	c.Meta[MetaCheckpointKey] = base64.StdEncoding.EncodeToString(b)
	return nil
}

// MetaOf returns the metadata PutMeta stored in c, or nil when there is none.
func MetaOf(c *graph.Checkpoint) (map[string]any, error) {
	s, ok := c.Meta[MetaCheckpointKey]
	if !ok {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("llama: checkpoint metadata %q: %w", MetaCheckpointKey, err)
	}
	f, err := gguf.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("llama: checkpoint metadata %q: %w", MetaCheckpointKey, err)
	}
	m := map[string]any{}
	for _, kv := range f.KV {
		m[kv.Key] = kv.Value
	}
	return m, nil
}
