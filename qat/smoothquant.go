package qat

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/graph"
)

// ChannelFoldModel is what SmoothQuant needs from a model: its linears and parameters and, for
// each activation site, the parameter that produces the site's channels linearly (a norm gain or
// the output rows of a linear) so that a per-channel scale can be folded into it. *graph.LM
// implements it.
type ChannelFoldModel interface {
	LinearModel
	ChannelFold(site string) (graph.ChannelFold, error)
}

var _ ChannelFoldModel = (*graph.LM)(nil)

// SmoothQuant migrates quantization difficulty from activations to weights (Xiao et al. 2023,
// "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language Models",
// eq. 4). For every activation site with calibration statistics absMax[site][j] = max|X_j| (the
// AbsMax of LinearInputStats, e.g. from CollectLMStats on float batches) it computes
//
//	s_j = max|X_j|^alpha / max|W_j|^(1-alpha)
//
// where max|W_j| is the maximum of |column j| over every weight reading the site (s_j = 1 where
// either maximum is 0; s_j is clamped to [1e-5, 1e5]), multiplies those weight columns by s_j and
// divides the site's producer (m.ChannelFold: the preceding RMSNorm gain, or the output rows of
// wv for the attention output and of w3 for the SwiGLU output) by s_j. The model computes the same
// function in exact arithmetic, its activation X_j becomes X_j/s_j and, for alpha 0.5, the
// per-channel maxima of activation and weight become equal.
//
// Sites are processed from the last linear to the first, so that a row fold (wv, w3) has been
// applied before the columns of the same weight are measured for the site it reads. Sites absent
// from absMax are left alone. It returns the scales applied per site. alpha must lie in [0, 1].
// Statistics of the wrong length, negative or non-finite are an error, and then no parameter has
// changed (the folds are computed on copies and stored at the end).
func SmoothQuant(m ChannelFoldModel, absMax map[string][]float64, alpha float64) (map[string][]float64, error) {
	if !(alpha >= 0 && alpha <= 1) {
		return nil, fmt.Errorf("qat: SmoothQuant alpha %v outside [0,1]", alpha)
	}
	ls := m.Linears()
	readers := map[string][]graph.LMLinear{}
	var order []string // sites in reverse graph order
	for i := len(ls) - 1; i >= 0; i-- {
		l := ls[i]
		if readers[l.Input] == nil {
			order = append(order, l.Input)
		}
		readers[l.Input] = append(readers[l.Input], l)
	}
	vals := map[string][]float64{} // working copies of the parameters touched
	get := func(name string) ([]float64, error) {
		if v, ok := vals[name]; ok {
			return v, nil
		}
		p := m.Param(name)
		if p == nil {
			return nil, fmt.Errorf("qat: SmoothQuant: the model has no parameter %q", name)
		}
		v, err := paramFloat64s(p)
		if err != nil {
			return nil, err
		}
		vals[name] = v
		return v, nil
	}
	out := map[string][]float64{}
	for _, site := range order {
		xm, ok := absMax[site]
		if !ok {
			continue
		}
		in := readers[site][0].In
		if len(xm) != in {
			return nil, fmt.Errorf("qat: SmoothQuant: site %q has %d statistics for %d channels", site, len(xm), in)
		}
		for j, v := range xm {
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("qat: SmoothQuant: site %q channel %d: max|x| is %v (want finite and >= 0; check the calibration data)", site, j, v)
			}
		}
		f, err := m.ChannelFold(site)
		if err != nil {
			return nil, err
		}
		wm := make([]float64, in)
		for _, l := range readers[site] {
			w, err := get(l.Name + ".weight")
			if err != nil {
				return nil, err
			}
			if len(w) != l.In*l.Out {
				return nil, fmt.Errorf("qat: SmoothQuant: %s.weight has %d values for [%d, %d]", l.Name, len(w), l.Out, l.In)
			}
			for i, v := range w {
				wm[i%in] = max(wm[i%in], math.Abs(v))
			}
		}
		s := make([]float64, in)
		for j := range s {
			s[j] = 1
			if xm[j] > 0 && wm[j] > 0 {
				s[j] = math.Pow(xm[j], alpha) / math.Pow(wm[j], 1-alpha)
				s[j] = min(max(s[j], 1e-5), 1e5)
			}
		}
		for _, l := range readers[site] {
			w := vals[l.Name+".weight"]
			for i := range w {
				w[i] *= s[i%in]
			}
		}
		switch {
		case f.Gain != "":
			g, err := get(f.Gain)
			if err != nil {
				return nil, err
			}
			if len(g) != in {
				return nil, fmt.Errorf("qat: SmoothQuant: gain %s has %d values for %d channels", f.Gain, len(g), in)
			}
			for j := range g {
				g[j] /= s[j]
			}
		case f.Rows != "":
			w, err := get(f.Rows)
			if err != nil {
				return nil, err
			}
			if len(w)%in != 0 {
				return nil, fmt.Errorf("qat: SmoothQuant: %s has %d values, not %d rows", f.Rows, len(w), in)
			}
			cols := len(w) / in
			for i := range w {
				w[i] /= s[i/cols]
			}
		default:
			return nil, fmt.Errorf("qat: SmoothQuant: site %q has no producer to fold into", site)
		}
		out[site] = s
	}
	for name, v := range vals {
		if err := setParamFloat64s(m.Param(name), v); err != nil {
			return nil, err
		}
	}
	return out, nil
}
