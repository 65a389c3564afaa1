package qat

import (
	"fmt"

	"github.com/qatgo/qatgo/graph"
)

// GPTQLinears quantizes the weights of m's linear layers with GPTQ, each from the Hessian of its
// input site in stats (LinearInputStats with Gram, e.g. from CollectLMStats), and replaces every
// quantized weight in place by its dequantized value scale*q. cfg gives each linear's
// configuration; ok = false leaves the linear alone. It returns the quantized weights by
// parameter name ("<linear>.weight"): their Params() are the scales to set on the weight
// fake-quantizers (the min/max of a GPTQ weight group need not reach the largest level, so an
// observer would choose a finer grid and re-round the weights).
//
// The Hessians are those of the statistics given: collected once on the float model they give
// the one-shot variant; re-collecting them after each block with the earlier blocks already
// quantized (and cfg selecting that block's linears) gives the reference's sequential variant.
// On error, weights quantized before the failing one stay quantized.
func GPTQLinears(m LinearModel, stats *LinearInputStats, cfg func(l graph.LMLinear) (GPTQConfig, bool)) (map[string]*QuantizedWeight, error) {
	out := map[string]*QuantizedWeight{}
	hess := map[string][]float64{}
	for _, l := range m.Linears() {
		c, ok := cfg(l)
		if !ok {
			continue
		}
		h, ok := hess[l.Input]
		if !ok {
			var err error
			if h, err = stats.Hessian(l.Input); err != nil {
				return out, fmt.Errorf("qat: GPTQ %s: %w", l.Name, err)
			}
			hess[l.Input] = h
		}
		p := m.Param(l.Name + ".weight")
		if p == nil {
			return out, fmt.Errorf("qat: GPTQ: model has no parameter %s.weight", l.Name)
		}
		w, err := paramFloat64s(p)
		if err != nil {
			return out, err
		}
		q, err := GPTQ(w, l.Out, l.In, h, c)
		if err != nil {
			return out, fmt.Errorf("qat: GPTQ %s: %w", l.Name, err)
		}
		if err := setParamFloat64s(p, q.Weights); err != nil {
			return out, err
		}
		out[p.Name] = q
	}
	return out, nil
}
