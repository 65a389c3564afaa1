package graph

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Conv2dFunc builds a dense (groups = 1) 2-D convolution of NCHW x with OIHW weight w, symmetric
// zero padding pad and stride. It must be differentiable for G.Grad.
type Conv2dFunc func(x, w *G.Node, pad, stride int) (*G.Node, error)

// Conv2dImpl is the convolution every Conv2d layer uses (grouped convolutions call it once per
// group). It defaults to GorgoniaConv2d; swap it (before building) for a faster op, e.g. convop.
var Conv2dImpl Conv2dFunc = GorgoniaConv2d

// MaxPool2DImpl builds max pooling (Gorgonia's MaxPool2D signature); swap it like Conv2dImpl
// (e.g. convop.MaxPool2D).
var MaxPool2DImpl func(x *G.Node, kernel tensor.Shape, pad, stride []int) (*G.Node, error) = G.MaxPool2D

// ReLUImpl builds max(x, 0) (Gorgonia's Rectify by default; e.g. convop.ReLU is one pass each way).
var ReLUImpl func(x *G.Node) (*G.Node, error) = G.Rectify

// GorgoniaConv2d is Conv2dFunc on Gorgonia's im2col convolution.
func GorgoniaConv2d(x, w *G.Node, pad, stride int) (*G.Node, error) {
	ws := w.Shape()
	return G.Conv2d(x, w, tensor.Shape{ws[2], ws[3]}, []int{pad, pad}, []int{stride, stride}, []int{1, 1})
}

// Quantizer inserts a fake-quantizer at a site and returns its output node. Package qat provides
// one (from a QConfig); graph itself never quantizes.
type Quantizer interface {
	Quantize(s Site, x *G.Node) (*G.Node, error)
}

// BiasQuantizer is an optional extension of Quantizer. When Options.Quant implements it, Build
// passes the bias that the integer runtime adds to the int32 accumulator of a weighted group
// through QuantizeBias: for groups without BatchNorm, and for folded BatchNorm when it uses running
// statistics (evaluation, after the BN freeze; with batch statistics the bias changes every batch
// and stays float). in is the activation site feeding the group, w its weight site, wq the
// fake-quantized weight node and b the bias vector (one value per output channel).
type BiasQuantizer interface {
	QuantizeBias(in, w Site, wq, b *G.Node) (*G.Node, error)
}

// Options select how Build lowers a model to a Gorgonia graph.
type Options struct {
	Batch int  // batch size (the graph's static leading dimension)
	Train bool // batch statistics in BatchNorm, dropout active
	// Quant, when set, is called at every Site (model input, group weights, group outputs).
	Quant Quantizer
	// FoldBN builds each Conv/Linear+BN group as one folded op (Jacob et al. 2018;
	// Krishnamoorthi 2018): the weight is W*gamma/sigma_running (quantized when Quant is set).
	// In training before FreezeBN the conv output is rescaled by sigma_running/sigma_batch and
	// shifted with batch statistics; otherwise the running statistics give the bias
	// beta - gamma*mean_running/sigma_running, which is exactly what export folds.
	FoldBN bool
	// FreezeBN uses running statistics even when Train is set (folded or not) and stops
	// running-statistic updates.
	FreezeBN bool
}

// BNStat holds the batch statistics nodes of a BatchNorm built in training mode; after each run
// Net.UpdateRunningStats folds them into the running buffers.
type BNStat struct {
	Layer     string
	Mean, Var *G.Node // biased batch mean and variance over all but the channel axis
	Count     int     // number of values per channel in the batch
}

// Net is a model lowered to a Gorgonia graph for a fixed batch size.
type Net struct {
	Model  *Model
	Opts   Options
	G      *G.ExprGraph
	X      *G.Node              // input [Batch, Input...], bound to XVal
	XVal   *tensor.Dense        // write input data here before running
	Out    *G.Node              // model output [Batch, OutShape...]
	Nodes  map[string]*G.Node   // output node of every layer
	Params map[string]*G.Node   // parameter nodes by parameter name (bound to Param.Value)
	Sites  map[string]*G.Node   // fake-quantizer output node by site name
	BN     []BNStat             // training-mode BatchNorm statistics
	Masks  map[string]*maskNode // dropout masks by layer name

	actSite map[string]string // layer name -> the activation site its output is quantized by
}

type maskNode struct {
	node *G.Node
	val  *tensor.Dense
	p    float64
}

// Build lowers the model to a new Gorgonia graph.
func (m *Model) Build(o Options) (*Net, error) {
	if m.err != nil {
		return nil, m.err
	}
	if o.Batch < 1 {
		return nil, fmt.Errorf("graph: batch size %d", o.Batch)
	}
	n := &Net{Model: m, Opts: o, G: G.NewGraph(), Nodes: map[string]*G.Node{}, Params: map[string]*G.Node{},
		Sites: map[string]*G.Node{}, Masks: map[string]*maskNode{}, actSite: map[string]string{InputName: InputName}}
	xs := append([]int{o.Batch}, m.Input...)
	n.XVal = tensor.New(tensor.Of(m.Dtype), tensor.WithShape(xs...))
	n.X = G.NewTensor(n.G, m.Dtype, len(xs), G.WithShape(xs...), G.WithName(m.Name+"/"+InputName), G.WithValue(n.XVal))
	for _, p := range m.params {
		s := p.Value.Shape()
		n.Params[p.Name] = G.NewTensor(n.G, m.Dtype, s.Dims(), G.WithShape(s...), G.WithName(m.Name+"/"+p.Name), G.WithValue(p.Value))
	}
	x := n.X
	var err error
	if o.Quant != nil {
		if x, err = o.Quant.Quantize(m.Sites()[0], x); err != nil {
			return nil, err
		}
		n.Sites[InputName] = x
	}
	n.Nodes[InputName] = x
	sites := map[string]Site{}
	for _, s := range m.Sites() {
		sites[s.Name] = s
	}
	for _, g := range m.Groups() {
		if err := n.buildGroup(g, sites); err != nil {
			return nil, fmt.Errorf("graph: building %q: %w", g.Op, err)
		}
	}
	n.Out = n.Nodes[m.Layers[len(m.Layers)-1].Name]
	return n, nil
}

func (n *Net) constant(v float64) *G.Node {
	if n.Model.Dtype == tensor.Float64 {
		return G.NewConstant(v)
	}
	return G.NewConstant(float32(v))
}

func (n *Net) param(layer string, r Role) *G.Node { return n.Params[layer+"."+string(r)] }

func (n *Net) buildGroup(g Group, sites map[string]Site) error {
	m, o := n.Model, n.Opts
	fold := g.BN != "" && o.FoldBN
	for i, name := range g.Layers {
		l := m.Layer(name)
		if fold && l.Kind == KindBatchNorm {
			continue // built together with the conv/linear
		}
		in := make([]*G.Node, len(l.Inputs))
		for j, s := range l.Inputs {
			in[j] = n.Nodes[s]
		}
		if i > 0 {
			in[0] = n.Nodes[g.Layers[i-1]]
		}
		var out *G.Node
		var err error
		switch l.Kind {
		case KindConv2d, KindLinear:
			w := n.param(l.Name, RoleWeight)
			var bn *Layer
			var wscale *G.Node
			if fold {
				bn = m.Layer(g.BN)
				gamma, rv := n.param(bn.Name, RoleGamma), n.param(bn.Name, RoleRunningVar)
				sr, err := G.Sqrt(G.Must(G.Add(rv, n.constant(bn.Eps))))
				if err != nil {
					return err
				}
				if wscale, err = G.HadamardDiv(gamma, sr); err != nil {
					return err
				}
				if w, err = ChanScale(w, wscale, 0); err != nil {
					return err
				}
			}
			if o.Quant != nil {
				if w, err = o.Quant.Quantize(sites[g.Op+".weight"], w); err != nil {
					return err
				}
				n.Sites[g.Op+".weight"] = w
			}
			if l.Kind == KindConv2d {
				out, err = n.conv(l, in[0], w)
			} else {
				out, err = G.Mul(in[0], G.Must(G.Transpose(w)))
			}
			if err != nil {
				return err
			}
			qb := func(b *G.Node) (*G.Node, error) { return b, nil }
			if bq, ok := o.Quant.(BiasQuantizer); ok && o.Quant != nil {
				in, okIn := sites[n.actSite[l.Inputs[0]]]
				if okIn {
					wsite, wq := sites[g.Op+".weight"], w
					qb = func(b *G.Node) (*G.Node, error) { return bq.QuantizeBias(in, wsite, wq, b) }
				}
			}
			if fold {
				out, err = n.foldedBN(l, bn, out, wscale, qb)
			} else if l.Bias {
				var b *G.Node
				if b, err = qb(n.param(l.Name, RoleBias)); err == nil {
					out, err = ChanShift(out, b, 1)
				}
			}
		case KindBatchNorm:
			out, err = n.batchNorm(l, in[0])
		case KindReLU:
			out, err = ReLUImpl(in[0])
		case KindReLU6:
			// relu(x) - relu(x-6) = min(max(x,0),6), with the right gradient on both sides.
			var hi *G.Node
			if hi, err = ReLUImpl(G.Must(G.Sub(in[0], n.constant(6)))); err == nil {
				out, err = G.Sub(G.Must(ReLUImpl(in[0])), hi)
			}
		case KindMaxPool2d:
			out, err = MaxPool2DImpl(in[0], tensor.Shape{l.Kernel, l.Kernel}, []int{l.Pad, l.Pad}, []int{l.Stride, l.Stride})
		case KindAvgPool2d:
			out, err = avgPool2D(in[0], l.Kernel, l.Stride)
		case KindGlobalAvgPool:
			s := in[0].Shape()
			var r *G.Node
			if r, err = G.Reshape(in[0], tensor.Shape{s[0], s[1], s[2] * s[3]}); err == nil {
				out, err = G.Mean(r, 2)
			}
		case KindFlatten:
			out, err = G.Reshape(in[0], tensor.Shape{o.Batch, l.OutShape[0]})
		case KindAdd:
			out, err = G.Add(in[0], in[1])
		case KindDropout:
			if !o.Train || l.P == 0 {
				out = in[0]
				break
			}
			s := in[0].Shape()
			mk := &maskNode{p: l.P, val: tensor.New(tensor.Of(m.Dtype), tensor.WithShape(s...))}
			mk.node = G.NewTensor(n.G, m.Dtype, s.Dims(), G.WithShape(s...), G.WithName(m.Name+"/"+l.Name+".mask"), G.WithValue(mk.val))
			n.Masks[l.Name] = mk
			out, err = G.HadamardProd(in[0], mk.node)
		default:
			err = fmt.Errorf("unknown layer kind %q", l.Kind)
		}
		if err != nil {
			return fmt.Errorf("layer %q: %w", l.Name, err)
		}
		n.Nodes[l.Name] = out
		if fold && l.Kind != KindBatchNorm {
			n.Nodes[g.BN] = out
		}
	}
	act := ""
	if first := m.Layer(g.Layers[0]); len(first.Inputs) > 0 {
		act = n.actSite[first.Inputs[0]]
	}
	if o.Quant != nil && g.Requantizes() {
		s := sites[g.Op+".out"]
		q, err := o.Quant.Quantize(s, n.Nodes[g.Out])
		if err != nil {
			return err
		}
		n.Sites[s.Name] = q
		n.Nodes[g.Out] = q
		act = s.Name
	}
	for _, name := range g.Layers {
		n.actSite[name] = act
	}
	return nil
}

func (n *Net) conv(l *Layer, x, w *G.Node) (*G.Node, error) {
	if l.Groups == 1 {
		return Conv2dImpl(x, w, l.Pad, l.Stride)
	}
	icg, ocg := l.InShape[0]/l.Groups, l.Out/l.Groups
	outs := make([]*G.Node, l.Groups)
	for gi := range outs {
		xi, err := G.Slice(x, nil, G.S(gi*icg, (gi+1)*icg))
		if err != nil {
			return nil, err
		}
		wi, err := G.Slice(w, G.S(gi*ocg, (gi+1)*ocg))
		if err != nil {
			return nil, err
		}
		// Slices of a 4-D tensor with one channel keep 4 dims only if the range is kept; reshape to be safe.
		if xi, err = G.Reshape(xi, tensor.Shape{x.Shape()[0], icg, x.Shape()[2], x.Shape()[3]}); err != nil {
			return nil, err
		}
		if wi, err = G.Reshape(wi, tensor.Shape{ocg, icg, l.Kernel, l.Kernel}); err != nil {
			return nil, err
		}
		if outs[gi], err = Conv2dImpl(xi, wi, l.Pad, l.Stride); err != nil {
			return nil, err
		}
	}
	return G.Concat(1, outs...)
}

// batchStats returns the biased batch mean and variance per channel and x - mean.
func (n *Net) batchStats(l *Layer, x *G.Node) (mean, variance, xc *G.Node, count int, err error) {
	s := x.Shape()
	count = s.TotalSize() / s[1]
	inv := n.constant(1 / float64(count))
	if mean, err = ChanSum(x, 1); err != nil {
		return
	}
	if mean, err = G.HadamardProd(mean, inv); err != nil {
		return
	}
	if xc, err = ChanShift(x, G.Must(G.Neg(mean)), 1); err != nil {
		return
	}
	if variance, err = ChanDot(xc, xc, 1); err != nil {
		return
	}
	variance, err = G.HadamardProd(variance, inv)
	return
}

func (n *Net) batchNorm(l *Layer, x *G.Node) (*G.Node, error) {
	gamma, beta := n.param(l.Name, RoleGamma), n.param(l.Name, RoleBeta)
	eps := n.constant(l.Eps)
	if n.Opts.Train && !n.Opts.FreezeBN {
		mean, variance, xc, count, err := n.batchStats(l, x)
		if err != nil {
			return nil, err
		}
		n.BN = append(n.BN, BNStat{Layer: l.Name, Mean: mean, Var: variance, Count: count})
		// gamma / Sqrt(var+eps): Gorgonia's InverseSqrt has a wrong derivative in v0.9.18.
		a, err := G.HadamardDiv(gamma, G.Must(G.Sqrt(G.Must(G.Add(variance, eps)))))
		if err != nil {
			return nil, err
		}
		return ChanAffine(xc, a, beta, 1)
	}
	rm, rv := n.param(l.Name, RoleRunningMean), n.param(l.Name, RoleRunningVar)
	// gamma / Sqrt(var+eps), the float32 operations export lowers a standalone BatchNorm with.
	a, err := G.HadamardDiv(gamma, G.Must(G.Sqrt(G.Must(G.Add(rv, eps)))))
	if err != nil {
		return nil, err
	}
	b, err := G.Sub(beta, G.Must(G.HadamardProd(rm, a)))
	if err != nil {
		return nil, err
	}
	return ChanAffine(x, a, b, 1)
}

// foldedBN finishes a folded conv/linear+BN whose (possibly quantized) weight was scaled by
// wscale = gamma/sigma_running: y is conv(x, W*wscale).
func (n *Net) foldedBN(l, bn *Layer, y, wscale *G.Node, qb func(*G.Node) (*G.Node, error)) (*G.Node, error) {
	beta, rm := n.param(bn.Name, RoleBeta), n.param(bn.Name, RoleRunningMean)
	if n.Opts.Train && !n.Opts.FreezeBN {
		// yo = y/wscale (+ conv bias) is the conv with the unscaled (quantized) weight; normalising
		// it with its batch statistics gives
		//   conv(x, q(W*gamma/sigma_r)) * sigma_r/sigma_b + beta - gamma*mean_b/sigma_b.
		// The statistics of yo follow exactly from those of y (mean/wscale + bias, var/wscale^2),
		// so y is normalised directly: no extra full-size pass for the rescaling.
		meanY, varY, yc, count, err := n.batchStats(bn, y)
		if err != nil {
			return nil, err
		}
		invW, err := G.Inverse(wscale)
		if err != nil {
			return nil, err
		}
		mean := G.Must(G.HadamardProd(meanY, invW))
		if l.Bias {
			mean = G.Must(G.Add(mean, n.param(l.Name, RoleBias)))
		}
		variance := G.Must(G.HadamardProd(varY, G.Must(G.Square(invW))))
		n.BN = append(n.BN, BNStat{Layer: bn.Name, Mean: mean, Var: variance, Count: count})
		sb, err := G.Sqrt(G.Must(G.Add(variance, n.constant(bn.Eps))))
		if err != nil {
			return nil, err
		}
		a, err := G.HadamardDiv(G.Must(G.HadamardProd(n.param(bn.Name, RoleGamma), invW)), sb)
		if err != nil {
			return nil, err
		}
		if l.Bias {
			// A conv bias before BN cancels in training (its true gradient is 0); keep it on the
			// loss path with weight 0 so G.Grad still accepts it as a parameter.
			beta = G.Must(G.Add(beta, G.Must(G.HadamardProd(n.param(l.Name, RoleBias), n.constant(0)))))
		}
		return ChanAffine(yc, a, beta, 1)
	}
	// beta + (bias - mean_r) * gamma/sigma_r
	shift := G.Must(G.Neg(rm))
	if l.Bias {
		shift = G.Must(G.Add(shift, n.param(l.Name, RoleBias)))
	}
	b, err := G.Add(beta, G.Must(G.HadamardProd(shift, wscale)))
	if err != nil {
		return nil, err
	}
	if b, err = qb(b); err != nil {
		return nil, err
	}
	return ChanShift(y, b, 1)
}

// UpdateRunningStats folds the batch statistics of the last run into the BatchNorm running
// buffers: r = (1-m)*r + m*batch, with the variance made unbiased (count/(count-1)).
func (n *Net) UpdateRunningStats() {
	for _, s := range n.BN {
		l := n.Model.Layer(s.Layer)
		rm := n.Model.LayerParam(s.Layer, RoleRunningMean).Value
		rv := n.Model.LayerParam(s.Layer, RoleRunningVar).Value
		corr := float64(s.Count) / float64(max(s.Count-1, 1))
		ema(rm, s.Mean.Value(), l.Momentum, 1)
		ema(rv, s.Var.Value(), l.Momentum, corr)
	}
}

func ema(dst *tensor.Dense, v G.Value, m, corr float64) {
	switch d := dst.Data().(type) {
	case []float32:
		src := v.Data().([]float32)
		for i := range d {
			d[i] = float32((1-m)*float64(d[i]) + m*corr*float64(src[i]))
		}
	case []float64:
		src := v.Data().([]float64)
		for i := range d {
			d[i] = (1-m)*d[i] + m*corr*src[i]
		}
	}
}

// FillMasks draws fresh inverted-dropout masks (0 or 1/(1-p)) from rng. Call it before each
// training run when the model has Dropout layers.
func (n *Net) FillMasks(rng *rand.Rand) {
	for _, l := range n.Model.Layers {
		mk, ok := n.Masks[l.Name]
		if !ok {
			continue
		}
		keep := 1 / (1 - mk.p)
		switch d := mk.val.Data().(type) {
		case []float32:
			for i := range d {
				d[i] = 0
				if rng.Float64() >= mk.p {
					d[i] = float32(keep)
				}
			}
		case []float64:
			for i := range d {
				d[i] = 0
				if rng.Float64() >= mk.p {
					d[i] = keep
				}
			}
		}
	}
}

// CrossEntropy returns the mean softmax cross-entropy of logits [N, K] against one-hot targets
// [N, K].
func CrossEntropy(logits, onehot *G.Node) (*G.Node, error) {
	logp, err := G.LogSoftMax(logits)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(G.Must(G.HadamardProd(logp, onehot)))
	if err != nil {
		return nil, err
	}
	nb := float64(logits.Shape()[0])
	var c *G.Node
	if logits.Dtype() == tensor.Float64 {
		c = G.NewConstant(-1 / nb)
	} else {
		c = G.NewConstant(float32(-1 / nb))
	}
	return G.HadamardProd(s, c)
}
