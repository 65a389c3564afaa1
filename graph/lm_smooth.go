package graph

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// smoothFold says where the 1/s of an activation site is folded: a norm gain (scaled per
// element) or the output rows of a linear whose output feeds the site linearly.
func (m *LM) smoothFold(site string) (gain, rows string, err error) {
	switch {
	case site == "head.in":
		return "norm.gain", "", nil
	case strings.HasSuffix(site, ".attn.in"):
		return strings.TrimSuffix(site, ".attn.in") + ".attn_norm.gain", "", nil
	case strings.HasSuffix(site, ".mlp.in"):
		return strings.TrimSuffix(site, ".mlp.in") + ".mlp_norm.gain", "", nil
	case strings.HasSuffix(site, ".attn.wo.in"):
		// attention output channel j is a convex combination of v channel j
		return "", strings.TrimSuffix(site, ".wo.in") + ".wv.weight", nil
	case strings.HasSuffix(site, ".mlp.w2.in"):
		// silu(a) * b is linear in b = x W3^T
		return "", strings.TrimSuffix(site, ".w2.in") + ".w3.weight", nil
	}
	return "", "", fmt.Errorf("graph: SmoothQuant: unknown site %q", site)
}

// SmoothQuant migrates quantization difficulty from activations to weights (Xiao et al. 2023,
// "SmoothQuant"). For every activation site with per-channel statistics actMax[site][j] =
// max|X_j| (from LMNet.AccumAbsMax on calibration batches) it computes
//
//	s_j = max|X_j|^alpha / max|W_.j|^(1-alpha)
//
// (max over the columns j of every weight reading the site; s_j = 1 where either maximum is 0;
// s_j clamped to [1e-5, 1e5]), multiplies those weight columns by s_j and divides the producer
// of X_j by s_j, so the model computes the same function in exact arithmetic: the preceding
// RMSNorm gain for attention, MLP and head inputs, the output rows of wv for the wo input
// (attention mixes v channels separately) and the output rows of w3 for the w2 input
// (silu(a)*b is linear in b). Sites absent from actMax are left alone. It returns the scales
// applied per site. alpha is in [0,1] (0.5 balances the maxima of X/s and W*s channel by
// channel). Statistics of the wrong length, negative or non-finite are an error, and then no
// parameter has been changed.
func (m *LM) SmoothQuant(actMax map[string][]float64, alpha float64) (map[string][]float64, error) {
	if !(alpha >= 0 && alpha <= 1) {
		return nil, fmt.Errorf("graph: SmoothQuant alpha %v outside [0,1]", alpha)
	}
	readers := map[string][]LMLinear{}
	for _, l := range m.linears {
		readers[l.Input] = append(readers[l.Input], l)
	}
	// Compute every site's scales first, so that bad statistics leave the model untouched.
	type fold struct {
		site, gain, rows string
		s                []float64
	}
	var folds []fold
	for _, site := range sortedKeys(readers) {
		xm, ok := actMax[site]
		if !ok {
			continue
		}
		ls := readers[site]
		in := ls[0].In
		if len(xm) != in {
			return nil, fmt.Errorf("graph: SmoothQuant: site %q has %d statistics for %d channels (pass LMNet.AccumAbsMax's output)", site, len(xm), in)
		}
		for j, v := range xm {
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("graph: SmoothQuant: site %q channel %d: max|x| is %v (want finite and >= 0; check the calibration data)", site, j, v)
			}
		}
		gain, rows, err := m.smoothFold(site)
		if err != nil {
			return nil, err
		}
		wm := make([]float64, in)
		for _, l := range ls {
			w := paramFloats(m.byName[l.Name+".weight"])
			for i := range w {
				wm[i%in] = max(wm[i%in], math.Abs(w[i]))
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
		folds = append(folds, fold{site, gain, rows, s})
	}
	out := map[string][]float64{}
	for _, f := range folds {
		s := f.s
		in := len(s)
		for _, l := range readers[f.site] {
			scaleParam(m.byName[l.Name+".weight"], func(i int) float64 { return s[i%in] })
		}
		if f.gain != "" {
			scaleParam(m.byName[f.gain], func(i int) float64 { return 1 / s[i] })
		} else {
			p := m.byName[f.rows]
			cols := p.Value.Shape()[1]
			scaleParam(p, func(i int) float64 { return 1 / s[i/cols] })
		}
		out[f.site] = s
	}
	return out, nil
}

func sortedKeys[V any](mp map[string]V) []string { return slices.Sorted(maps.Keys(mp)) }

func paramFloats(p *Param) []float64 {
	switch d := p.Value.Data().(type) {
	case []float32:
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x)
		}
		return v
	case []float64:
		return d
	}
	return nil
}

func scaleParam(p *Param, f func(i int) float64) {
	switch d := p.Value.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(float64(d[i]) * f(i))
		}
	case []float64:
		for i := range d {
			d[i] *= f(i)
		}
	}
}
