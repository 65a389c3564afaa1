package main

import (
	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/qat"
)

// prepare applies run e's QConfig to lq. A gptq run first quantizes the block linears with GPTQ
// (qat.GPTQLinears: Hessians from the float model's calibration statistics, e's bits and group
// size; the head keeps its observer at -head-bits) and fixes their weight quantizers to GPTQ's
// scales, so that the fake-quant graph, checkpoints and export all use GPTQ's integer weights.
func prepare(lq *graph.LM, e exp, stats *qat.LinearInputStats) (*qat.Prepared, error) {
	var qw map[string]*qat.QuantizedWeight
	if e.gptq {
		group := 0
		if e.recipe.WBits < 8 {
			group = e.recipe.Group
		}
		var err error
		qw, err = qat.GPTQLinears(lq, stats, func(l graph.LMLinear) (qat.GPTQConfig, bool) {
			return qat.GPTQConfig{Bits: e.recipe.WBits, GroupSize: group}, l.Name != "head"
		})
		if err != nil {
			return nil, err
		}
	}
	p, err := qat.Prepare(lq, e.recipe.QConfig())
	if err != nil {
		return nil, err
	}
	for site, w := range qw {
		if err := p.SetParams(site, w.Params()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// anyGPTQ reports whether a run needs the Hessians (X^T X) of the calibration statistics.
func anyGPTQ(es []exp) bool {
	for _, e := range es {
		if e.gptq {
			return true
		}
	}
	return false
}
