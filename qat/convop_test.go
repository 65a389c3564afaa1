package qat

import (
	"github.com/qatgo/qatgo/convop"
	"github.com/qatgo/qatgo/graph"
	G "gorgonia.org/gorgonia"
)

// useConvop switches graph to convop's ops and returns a function restoring the defaults.
func useConvop() func() {
	c, p, r := graph.Conv2dImpl, graph.MaxPool2DImpl, graph.ReLUImpl
	graph.Conv2dImpl = func(x, w *G.Node, pad, stride int) (*G.Node, error) {
		return convop.Conv2d(x, w, []int{pad, pad}, []int{stride, stride})
	}
	graph.MaxPool2DImpl = convop.MaxPool2D
	graph.ReLUImpl = convop.ReLU
	return func() { graph.Conv2dImpl, graph.MaxPool2DImpl, graph.ReLUImpl = c, p, r }
}
