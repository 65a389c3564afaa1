package qat

import (
	"fmt"
	"math"

	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Loss maps a task graph's output (Graph.Out: class scores [N, K], next-token logits
// [B*T, V]) and its target (Graph.Target: one-hot rows of the same shape) to the scalar loss the
// trainer minimises (Config.Loss). Any differentiable Gorgonia expression will do.
//
// Beware of Gorgonia v0.9.18's SoftMax: its hash ignores the log flag, so in a graph that also
// holds LogSoftMax(x) (every NextTokenTask graph does: graph.LMNet.Loss) G.SoftMax(x) is merged
// into that node and returns log-probabilities. Write softmax as G.Exp(G.LogSoftMax(x)).
type Loss func(out, target *G.Node) (*G.Node, error)

// CrossEntropy is the default Loss: the mean softmax cross-entropy over the rows,
// -1/N sum_i log softmax(out_i)[target_i], which is the classification loss of a ClassifyTask and
// the next-token loss of a NextTokenTask (graph.CrossEntropy).
func CrossEntropy(out, target *G.Node) (*G.Node, error) { return graph.CrossEntropy(out, target) }

// LabelSmoothing returns the cross-entropy against smoothed targets (Szegedy et al. 2016):
// (1-eps)*onehot + eps/K over K classes, that is
// -1/N sum_i [(1-eps) log p_i[y_i] + eps/K sum_k log p_i[k]]. eps must be in [0, 1).
func LabelSmoothing(eps float64) (Loss, error) {
	if math.IsNaN(eps) || eps < 0 || eps >= 1 {
		return nil, fmt.Errorf("qat: label smoothing %v outside [0, 1)", eps)
	}
	return func(out, target *G.Node) (*G.Node, error) {
		k := float64(out.Shape()[1])
		c := func(v float64) *G.Node {
			if out.Dtype() == tensor.Float64 {
				return G.NewConstant(v)
			}
			return G.NewConstant(float32(v))
		}
		scaled, err := G.HadamardProd(target, c(1-eps))
		if err != nil {
			return nil, err
		}
		smooth, err := G.Add(scaled, c(eps/k))
		if err != nil {
			return nil, err
		}
		return graph.CrossEntropy(out, smooth)
	}, nil
}

func (c *Config) loss() Loss {
	if c.Loss != nil {
		return c.Loss
	}
	return CrossEntropy
}
