package llama

import (
	"fmt"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
	"github.com/qatgo/qatgo/quant"
)

// FromPrepared returns the weights of a language model prepared by qat.Prepare (p.Net a
// *graph.LM) as its fake-quant forward uses them: every quantized weight site is replaced by its
// fake-quantized values (quant.FakeQuantizeValue with the site's current parameters, e.g. the
// fp16 block scales learned under qat.GGMLPreset.LearnScale); float sites, norms and the
// embedding are copied as they are. Write the result with EncodeOptions.Exact to store those
// values exactly.
func FromPrepared(p *qat.Prepared) (*Weights, error) {
	m, ok := p.Net.(*graph.LM)
	if !ok {
		return nil, fmt.Errorf("llama: the prepared network is a %T, not a *graph.LM", p.Net)
	}
	w, err := FromLM(m)
	if err != nil {
		return nil, err
	}
	weights := map[string]bool{}
	for _, s := range p.Sites {
		if s.Kind == graph.SiteWeight {
			weights[s.Name] = true
		}
	}
	for g, name := range lmNames(w.Config) {
		if !weights[name] {
			continue
		}
		sp, err := p.Params(name)
		if err != nil {
			return nil, fmt.Errorf("llama: %w", err)
		}
		if sp.Float {
			continue
		}
		x := w.Tensors[g]
		k := len(sp.Params)
		if k == 0 || len(x)%k != 0 {
			return nil, fmt.Errorf("llama: site %s: %d parameters for %d weights", name, k, len(x))
		}
		// slices (per tensor, output channel or group of the input dimension) are contiguous runs
		run := len(x) / k
		for i, v := range x {
			q := sp.Params[i/run]
			x[i] = quant.FakeQuantizeValue(v, q.Scale, q.ZeroPoint, sp.Range.Min, sp.Range.Max)
		}
	}
	return w, nil
}
