package graph

import (
	"fmt"
	"strings"
)

// ChannelFold names the parameter that produces an activation site's channels linearly, so that a
// per-channel scale s of the site can be folded without changing the model: the linears reading
// the site take W[:, j] * s_j and the producer takes 1/s_j. Exactly one of the fields is set.
type ChannelFold struct {
	// Gain is a norm gain [In] (scaled element-wise: g_j / s_j).
	Gain string
	// Rows is a linear weight [In, *] whose output row j feeds channel j linearly (row j / s_j).
	Rows string
}

// ChannelFold returns the producer of the LM activation site site (a Linears()[i].Input): the
// preceding RMSNorm gain for attention, MLP and head inputs; the rows of wv for the wo input
// (attention mixes value channels separately: output channel j is a convex combination of value
// channel j); the rows of w3 for the w2 input (silu(a) * b is linear in b = x W3^T), unless
// that input is rotated online (LMConfig.OnlineHadamard), which is an error.
func (m *LM) ChannelFold(site string) (ChannelFold, error) {
	switch {
	case site == "head.in":
		return ChannelFold{Gain: "norm.gain"}, nil
	case strings.HasSuffix(site, ".attn.in"):
		return ChannelFold{Gain: strings.TrimSuffix(site, ".attn.in") + ".attn_norm.gain"}, nil
	case strings.HasSuffix(site, ".mlp.in"):
		return ChannelFold{Gain: strings.TrimSuffix(site, ".mlp.in") + ".mlp_norm.gain"}, nil
	case strings.HasSuffix(site, ".attn.wo.in"):
		return ChannelFold{Rows: strings.TrimSuffix(site, ".wo.in") + ".wv.weight"}, nil
	case strings.HasSuffix(site, ".mlp.w2.in"):
		if m.Config.OnlineHadamard {
			return ChannelFold{}, fmt.Errorf("graph: site %q is rotated online (OnlineHadamard): its channels have no linear producer", site)
		}
		return ChannelFold{Rows: strings.TrimSuffix(site, ".w2.in") + ".w3.weight"}, nil
	}
	return ChannelFold{}, fmt.Errorf("graph: LM has no activation site %q", site)
}
