package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/qatgo/qatgo/graph"
	"github.com/qatgo/qatgo/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
	"gorgonia.org/tensor"
)

// Opset range Import accepts for the default domain.
const (
	MinImportOpset = 13
	MaxImportOpset = 21
)

// MaxFileSize bounds the size of a model file ReadFile accepts (1 GiB; protobuf caps messages at 2 GiB).
const MaxFileSize = 1 << 30

// ErrUnsupported is wrapped by every Import error about an operator, attribute value or graph
// structure that the library's models cannot express.
var ErrUnsupported = errors.New("onnx: unsupported")

// ErrMalformed is wrapped by errors about bytes that are not a valid ONNX model.
var ErrMalformed = errors.New("onnx: malformed model")

// Info describes an imported model beyond its layers.
type Info struct {
	Opset    int64  // default-domain opset the model imports
	Producer string // producer_name
	// Softmax is true when the model ends in a Softmax over the classes. The library's models
	// output logits, so the Softmax is not a layer; export appends it (export.Options.Softmax).
	Softmax bool
	// Meta holds the model's metadata_props (at most MaxMetadata entries), e.g. the input
	// normalisation input.mean/input.std of package data/preprocess that FromQModel writes.
	Meta map[string]string
}

// MaxMetadata bounds the metadata_props entries Import keeps; longer keys or values than
// MaxMetadataLen bytes are an error.
const (
	MaxMetadata    = 256
	MaxMetadataLen = 4096
)

// Unmarshal decodes an ONNX model from b.
func Unmarshal(b []byte) (*onnxpb.ModelProto, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformed, len(b), MaxFileSize)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("%w: no graph", ErrMalformed)
	}
	return &m, nil
}

// ReadFile reads and decodes an ONNX model file of at most MaxFileSize bytes.
func ReadFile(path string) (*onnxpb.ModelProto, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: %w: %d bytes (limit %d)", path, ErrMalformed, fi.Size(), MaxFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ImportFile reads an ONNX file and imports it (see Import); the model is named after the file
// when the graph has no name.
func ImportFile(path string) (*graph.Model, *Info, error) {
	mp, err := ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	m, info, err := Import(mp, name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, info, nil
}

// value is an ONNX tensor of the graph as the library sees it: the layer whose output it is and
// its per-example ONNX shape (without the batch axis).
type value struct {
	layer string
	shape []int
	// squeezed: the ONNX shape is (C,1,1) but the layer yields the vector (C) (GlobalAveragePool).
	squeezed bool
}

type importer struct {
	m      *graph.Model
	opset  int64
	consts map[string]*constTensor
	vals   map[string]value
	uses   map[string]int
	names  map[string]bool
	info   *Info
}

// Import turns a float ONNX model (NCHW, opset 13 to 21) into a graph.Model with its weights, in
// evaluation semantics. Operators and the attribute values accepted:
//
//   - Conv: 2-D, square kernel, equal strides, equal pads on all sides, dilation 1, any group
//     count (depthwise included), optional bias.
//   - Gemm (transA 0, any transB, alpha, beta; C of shape [Out] or [1,Out]); MatMul by a constant
//     [In,Out], fused with a following Add of a constant [Out] as the bias.
//   - Add of two tensors (residual); Relu; Clip with min 0 and max 6 (ReLU6) or no max (ReLU).
//   - MaxPool (square, equal strides and pads, no ceil mode or dilation); AveragePool (no
//     padding, no ceil mode); GlobalAveragePool.
//   - BatchNormalization (inference mode); Flatten (axis 1); Reshape to [batch, features];
//     Identity, Dropout (evaluation: identity); Constant.
//   - Softmax as the last node (recorded in Info.Softmax, see there).
//
// The model has one float input [N, C, H, W] or [N, F] and one output. Anything else is an error
// wrapping ErrUnsupported that names the operator, the node and the opset.
func Import(mp *onnxpb.ModelProto, name string) (*graph.Model, *Info, error) {
	g := mp.GetGraph()
	if g == nil {
		return nil, nil, fmt.Errorf("%w: no graph", ErrMalformed)
	}
	im := &importer{consts: map[string]*constTensor{}, vals: map[string]value{}, uses: map[string]int{},
		names: map[string]bool{graph.InputName: true}, info: &Info{Producer: mp.GetProducerName()}}
	for _, o := range mp.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			im.opset = o.GetVersion()
		}
	}
	im.info.Opset = im.opset
	if props := mp.GetMetadataProps(); len(props) > 0 {
		if len(props) > MaxMetadata {
			return nil, nil, fmt.Errorf("%w: %d metadata_props entries (limit %d)", ErrMalformed, len(props), MaxMetadata)
		}
		im.info.Meta = make(map[string]string, len(props))
		for _, kv := range props {
			if len(kv.GetKey()) > MaxMetadataLen || len(kv.GetValue()) > MaxMetadataLen {
				return nil, nil, fmt.Errorf("%w: metadata_props entry over %d bytes", ErrMalformed, MaxMetadataLen)
			}
			im.info.Meta[kv.GetKey()] = kv.GetValue()
		}
	}
	if im.opset < MinImportOpset || im.opset > MaxImportOpset {
		return nil, nil, fmt.Errorf("%w: default-domain opset %d (supported: %d to %d)", ErrUnsupported, im.opset, MinImportOpset, MaxImportOpset)
	}
	for _, t := range g.GetInitializer() {
		c, err := decodeTensor(t)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: initializer: %v", ErrMalformed, err)
		}
		im.consts[t.GetName()] = c
	}
	var inputs []*onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if _, ok := im.consts[in.GetName()]; !ok {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		return nil, nil, fmt.Errorf("%w: %d graph inputs besides initializers (want one image or vector input)", ErrUnsupported, len(inputs))
	}
	if len(g.GetOutput()) != 1 {
		return nil, nil, fmt.Errorf("%w: %d graph outputs (want one)", ErrUnsupported, len(g.GetOutput()))
	}
	inShape, err := inputShape(inputs[0])
	if err != nil {
		return nil, nil, err
	}
	if g.GetName() != "" {
		name = g.GetName()
	}
	im.m = graph.NewModel(name, inShape, tensor.Float32, 1)
	im.vals[inputs[0].GetName()] = value{layer: graph.InputName, shape: inShape}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			im.uses[in]++
		}
	}
	outName := g.GetOutput()[0].GetName()
	im.uses[outName]++
	nodes := g.GetNode()
	skip := map[int]bool{}
	for i, n := range nodes {
		if skip[i] {
			continue
		}
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, nil, im.unsupported(n, "operator domain %q", d)
		}
		if n.GetOpType() == "Softmax" && i != len(nodes)-1 {
			return nil, nil, im.unsupported(n, "Softmax is supported only as the last node")
		}
		fused, err := im.node(n, nodes[i+1:])
		if err != nil {
			return nil, nil, err
		}
		if fused {
			skip[i+1] = true
		}
		if err := im.m.Err(); err != nil {
			return nil, nil, fmt.Errorf("%w: node %q (%s): %v", ErrUnsupported, n.GetName(), n.GetOpType(), err)
		}
	}
	out, ok := im.vals[outName]
	if !ok {
		return nil, nil, fmt.Errorf("%w: graph output %q is not computed by any node", ErrMalformed, outName)
	}
	if len(im.m.Layers) == 0 || out.layer != im.m.Layers[len(im.m.Layers)-1].Name {
		return nil, nil, fmt.Errorf("%w: graph output %q is not the last layer's output", ErrUnsupported, outName)
	}
	return im.m, im.info, nil
}

// inputShape returns the per-example shape of the graph input: [N,C,H,W] or [N,F] with any batch.
func inputShape(v *onnxpb.ValueInfoProto) ([]int, error) {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("%w: input %q is not a float32 tensor", ErrUnsupported, v.GetName())
	}
	dims := tt.GetShape().GetDim()
	if len(dims) != 4 && len(dims) != 2 {
		return nil, fmt.Errorf("%w: input %q has rank %d (want [N,C,H,W] or [N,F])", ErrUnsupported, v.GetName(), len(dims))
	}
	var s []int
	total := 1
	for i, d := range dims[1:] {
		dv := d.GetDimValue()
		if dv < 1 || dv > MaxTensorElements {
			return nil, fmt.Errorf("%w: input %q dimension %d is %q (want a fixed size)", ErrUnsupported, v.GetName(), i+1, d.String())
		}
		if total *= int(dv); total > MaxTensorElements {
			return nil, fmt.Errorf("%w: input %q is too large", ErrUnsupported, v.GetName())
		}
		s = append(s, int(dv))
	}
	return s, nil
}

func (im *importer) unsupported(n *onnxpb.NodeProto, format string, a ...any) error {
	return fmt.Errorf("%w: operator %s in node %q (opset %d): %s", ErrUnsupported, n.GetOpType(), n.GetName(), im.opset, fmt.Sprintf(format, a...))
}

// layerName returns a unique layer name for the node: its name made safe, else op + counter.
func (im *importer) layerName(n *onnxpb.NodeProto) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, strings.Trim(n.GetName(), "/"))
	if base == "" {
		base = strings.ToLower(n.GetOpType())
	}
	name := base
	for i := 1; im.names[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	im.names[name] = true
	return name
}

func attrs(n *onnxpb.NodeProto) map[string]*onnxpb.AttributeProto {
	a := map[string]*onnxpb.AttributeProto{}
	for _, at := range n.GetAttribute() {
		a[at.GetName()] = at
	}
	return a
}

func intsOr(a map[string]*onnxpb.AttributeProto, k string, def []int64) []int64 {
	if at, ok := a[k]; ok {
		return at.GetInts()
	}
	return def
}

func intOr(a map[string]*onnxpb.AttributeProto, k string, def int64) int64 {
	if at, ok := a[k]; ok {
		return at.GetI()
	}
	return def
}

func floatOr(a map[string]*onnxpb.AttributeProto, k string, def float32) float32 {
	if at, ok := a[k]; ok {
		return at.GetF()
	}
	return def
}

// allEqual returns v[0] when all elements of v are equal and v has length n.
func allEqual(v []int64, n int) (int, bool) {
	if len(v) != n || n == 0 {
		return 0, false
	}
	for _, x := range v {
		if x != v[0] {
			return 0, false
		}
	}
	return int(v[0]), true
}

// input returns the value of the node's i-th input, which must be a computed tensor.
func (im *importer) input(n *onnxpb.NodeProto, i int) (value, error) {
	if i >= len(n.GetInput()) {
		return value{}, im.unsupported(n, "missing input %d", i)
	}
	v, ok := im.vals[n.GetInput()[i]]
	if !ok {
		if _, c := im.consts[n.GetInput()[i]]; c {
			return value{}, im.unsupported(n, "input %q is a constant where a computed tensor is needed", n.GetInput()[i])
		}
		return value{}, fmt.Errorf("%w: node %q (%s) reads %q, which no earlier node computes", ErrMalformed, n.GetName(), n.GetOpType(), n.GetInput()[i])
	}
	return v, nil
}

// constant returns the node's i-th input as a constant (nil if the input is absent or empty).
func (im *importer) constant(n *onnxpb.NodeProto, i int) (*constTensor, error) {
	if i >= len(n.GetInput()) || n.GetInput()[i] == "" {
		return nil, nil
	}
	c, ok := im.consts[n.GetInput()[i]]
	if !ok {
		return nil, im.unsupported(n, "input %q must be a constant (initializer)", n.GetInput()[i])
	}
	return c, nil
}

// setOut binds the node's first output; further outputs must be unused.
func (im *importer) setOut(n *onnxpb.NodeProto, v value) error {
	if len(n.GetOutput()) == 0 {
		return fmt.Errorf("%w: node %q has no output", ErrMalformed, n.GetName())
	}
	for _, o := range n.GetOutput()[1:] {
		if o != "" && im.uses[o] > 0 {
			return im.unsupported(n, "its output %q is used (only the first output is supported)", o)
		}
	}
	im.vals[n.GetOutput()[0]] = v
	return nil
}

// vector returns the value's layer as a vector input: an image value that is not a vector is refused.
func (im *importer) vector(n *onnxpb.NodeProto, v value) (string, int, error) {
	if len(v.shape) == 1 {
		return v.layer, v.shape[0], nil
	}
	if v.squeezed {
		return v.layer, v.shape[0], nil
	}
	return "", 0, im.unsupported(n, "input has per-example shape %v (want a vector: add Flatten)", v.shape)
}

func (im *importer) param(layer string, r graph.Role, v []float32) {
	copy(im.m.LayerParam(layer, r).Value.Data().([]float32), v)
}

// node imports one node. fused reports that it also consumed next[0] (MatMul + Add bias).
func (im *importer) node(n *onnxpb.NodeProto, next []*onnxpb.NodeProto) (fused bool, err error) {
	a := attrs(n)
	switch n.GetOpType() {
	case "Constant":
		at, ok := a["value"]
		if !ok || at.GetT() == nil {
			return false, im.unsupported(n, "only the tensor 'value' attribute is supported")
		}
		c, err := decodeTensor(at.GetT())
		if err != nil {
			return false, fmt.Errorf("%w: node %q: %v", ErrMalformed, n.GetName(), err)
		}
		if len(n.GetOutput()) != 1 {
			return false, fmt.Errorf("%w: Constant node %q has %d outputs", ErrMalformed, n.GetName(), len(n.GetOutput()))
		}
		im.consts[n.GetOutput()[0]] = c
		return false, nil
	case "Conv":
		return false, im.conv(n, a)
	case "Gemm", "MatMul":
		return im.linear(n, a, next)
	case "Add":
		if len(n.GetInput()) != 2 {
			return false, fmt.Errorf("%w: Add node %q has %d inputs", ErrMalformed, n.GetName(), len(n.GetInput()))
		}
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		y, err := im.input(n, 1)
		if err != nil {
			return false, err
		}
		if !slices.Equal(x.shape, y.shape) || x.squeezed != y.squeezed {
			return false, im.unsupported(n, "operands of shapes %v and %v (no broadcasting)", x.shape, y.shape)
		}
		l := im.m.Add(im.layerName(n), x.layer, y.layer)
		return false, im.setOut(n, value{layer: l.Name, shape: x.shape, squeezed: x.squeezed})
	case "Relu":
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		l := im.m.ReLU(im.layerName(n), x.layer)
		return false, im.setOut(n, value{layer: l.Name, shape: x.shape, squeezed: x.squeezed})
	case "Clip":
		return false, im.clip(n)
	case "MaxPool", "AveragePool":
		return false, im.pool(n, a)
	case "GlobalAveragePool":
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		if len(x.shape) != 3 || x.squeezed {
			return false, im.unsupported(n, "input has per-example shape %v (want C,H,W)", x.shape)
		}
		l := im.m.GlobalAvgPool(im.layerName(n), x.layer)
		return false, im.setOut(n, value{layer: l.Name, shape: []int{x.shape[0], 1, 1}, squeezed: true})
	case "BatchNormalization":
		return false, im.batchNorm(n, a)
	case "Flatten":
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		axis := intOr(a, "axis", 1)
		if axis < 0 {
			axis += int64(len(x.shape) + 1)
		}
		if axis != 1 {
			return false, im.unsupported(n, "axis %d (only 1: [batch, features])", intOr(a, "axis", 1))
		}
		return false, im.flatten(n, x)
	case "Reshape":
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		s, err := im.constant(n, 1)
		if err != nil {
			return false, err
		}
		if s == nil || len(s.i64) != 2 {
			return false, im.unsupported(n, "only a constant INT64 shape of two entries [batch, features] is supported")
		}
		if intOr(a, "allowzero", 0) != 0 {
			return false, im.unsupported(n, "allowzero 1")
		}
		p := int64(shapeSize(x.shape))
		b, f := s.i64[0], s.i64[1]
		ok := (f == p && (b == -1 || b >= 0)) || (f == -1 && b >= 0)
		if !ok {
			return false, im.unsupported(n, "shape %v of per-example shape %v (only [batch, %d])", s.i64, x.shape, p)
		}
		return false, im.flatten(n, x)
	case "Identity", "Dropout":
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		if n.GetOpType() == "Dropout" && len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
			c, err := im.constant(n, 2)
			if err != nil || len(c.i64) > 0 && c.i64[0] != 0 {
				return false, im.unsupported(n, "training_mode must be a constant false")
			}
		}
		return false, im.setOut(n, x)
	case "Softmax":
		x, err := im.input(n, 0)
		if err != nil {
			return false, err
		}
		axis := intOr(a, "axis", -1)
		if len(x.shape) != 1 && !x.squeezed || axis != -1 && axis != 1 {
			return false, im.unsupported(n, "softmax over axis %d of per-example shape %v (only over the classes of [batch, classes])", axis, x.shape)
		}
		im.info.Softmax = true
		return false, im.setOut(n, x)
	}
	return false, im.unsupported(n, "not implemented by the importer")
}

func (im *importer) flatten(n *onnxpb.NodeProto, x value) error {
	p := shapeSize(x.shape)
	if len(x.shape) == 1 || x.squeezed {
		return im.setOut(n, value{layer: x.layer, shape: []int{p}})
	}
	l := im.m.Flatten(im.layerName(n), x.layer)
	return im.setOut(n, value{layer: l.Name, shape: []int{p}})
}

func (im *importer) conv(n *onnxpb.NodeProto, a map[string]*onnxpb.AttributeProto) error {
	x, err := im.input(n, 0)
	if err != nil {
		return err
	}
	w, err := im.constant(n, 1)
	if err != nil {
		return err
	}
	b, err := im.constant(n, 2)
	if err != nil {
		return err
	}
	if len(x.shape) != 3 || x.squeezed {
		return im.unsupported(n, "input of per-example shape %v (only 2-D NCHW)", x.shape)
	}
	if w == nil || len(w.dims) != 4 || w.f32 == nil {
		return im.unsupported(n, "weight must be a float constant of rank 4")
	}
	if ap := string(a["auto_pad"].GetS()); ap != "" && ap != "NOTSET" {
		return im.unsupported(n, "auto_pad %s (write explicit pads)", ap)
	}
	kh, kw := w.dims[2], w.dims[3]
	if kh != kw {
		return im.unsupported(n, "kernel %dx%d (only square kernels)", kh, kw)
	}
	if ks := intsOr(a, "kernel_shape", []int64{int64(kh), int64(kw)}); !slices.Equal(ks, []int64{int64(kh), int64(kw)}) {
		return im.unsupported(n, "kernel_shape %v differs from the weight's %dx%d", ks, kh, kw)
	}
	stride, ok := allEqual(intsOr(a, "strides", []int64{1, 1}), 2)
	if !ok || stride < 1 {
		return im.unsupported(n, "strides %v (only equal strides)", intsOr(a, "strides", nil))
	}
	pad, ok := allEqual(intsOr(a, "pads", []int64{0, 0, 0, 0}), 4)
	if !ok || pad < 0 {
		return im.unsupported(n, "pads %v (only equal pads on all sides)", intsOr(a, "pads", nil))
	}
	if d, ok := allEqual(intsOr(a, "dilations", []int64{1, 1}), 2); !ok || d != 1 {
		return im.unsupported(n, "dilations %v (only 1)", intsOr(a, "dilations", nil))
	}
	groups := int(intOr(a, "group", 1))
	out := w.dims[0]
	if groups < 1 || w.dims[1]*groups != x.shape[0] || out%groups != 0 {
		return im.unsupported(n, "weight %v, group %d on %d input channels", w.dims, groups, x.shape[0])
	}
	if b != nil && (b.f32 == nil || b.size() != out) {
		return im.unsupported(n, "bias of dims %v for %d output channels", b.dims, out)
	}
	l := im.m.Conv2d(im.layerName(n), graph.Conv{Out: out, Kernel: kh, Stride: stride, Pad: pad, Groups: groups, Bias: b != nil}, x.layer)
	if im.m.Err() != nil {
		return nil
	}
	im.param(l.Name, graph.RoleWeight, w.f32)
	if b != nil {
		im.param(l.Name, graph.RoleBias, b.f32)
	}
	return im.setOut(n, value{layer: l.Name, shape: l.OutShape})
}

func (c *constTensor) dims64() []int64 {
	d := make([]int64, len(c.dims))
	for i, v := range c.dims {
		d[i] = int64(v)
	}
	return d
}

// biasVector returns c as [out] values when it has shape [out], [1,out] or is a single value.
func biasVector(c *constTensor, out int) ([]float32, bool) {
	if c == nil || c.f32 == nil {
		return nil, false
	}
	if len(c.f32) == 1 {
		v := make([]float32, out)
		for i := range v {
			v[i] = c.f32[0]
		}
		return v, true
	}
	if len(c.f32) != out || len(c.dims) > 2 || len(c.dims) == 2 && c.dims[0] != 1 {
		return nil, false
	}
	return c.f32, true
}

func (im *importer) linear(n *onnxpb.NodeProto, a map[string]*onnxpb.AttributeProto, next []*onnxpb.NodeProto) (bool, error) {
	x, err := im.input(n, 0)
	if err != nil {
		return false, err
	}
	src, in, err := im.vector(n, x)
	if err != nil {
		return false, err
	}
	bt, err := im.constant(n, 1)
	if err != nil {
		return false, err
	}
	if bt == nil || len(bt.dims) != 2 || bt.f32 == nil {
		return false, im.unsupported(n, "B must be a float constant matrix")
	}
	transB := n.GetOpType() == "Gemm" && intOr(a, "transB", 0) != 0
	if n.GetOpType() == "Gemm" && intOr(a, "transA", 0) != 0 {
		return false, im.unsupported(n, "transA 1")
	}
	rows, cols := bt.dims[0], bt.dims[1]
	out := cols
	if transB {
		out = rows
	}
	if (transB && cols != in) || (!transB && rows != in) {
		return false, im.unsupported(n, "B of dims %v (transB %v) on %d input features", bt.dims, transB, in)
	}
	w := make([]float32, out*in) // [out, in]
	alpha := float32(1)
	if n.GetOpType() == "Gemm" {
		alpha = floatOr(a, "alpha", 1)
	}
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			var v float32
			if transB {
				v = bt.f32[o*cols+i]
			} else {
				v = bt.f32[i*cols+o]
			}
			w[o*in+i] = alpha * v
		}
	}
	var bias []float32
	fused := false
	if n.GetOpType() == "Gemm" {
		c, err := im.constant(n, 2)
		if err != nil {
			return false, err
		}
		if c != nil {
			v, ok := biasVector(c, out)
			if !ok {
				return false, im.unsupported(n, "C of dims %v (want [%d] or [1,%d])", c.dims, out, out)
			}
			beta := floatOr(a, "beta", 1)
			bias = make([]float32, out)
			for i := range bias {
				bias[i] = beta * v[i]
			}
		}
	} else if len(next) > 0 && next[0].GetOpType() == "Add" && len(n.GetOutput()) == 1 && im.uses[n.GetOutput()[0]] == 1 {
		add := next[0]
		for j, in := range add.GetInput() {
			if in != n.GetOutput()[0] || len(add.GetInput()) != 2 {
				continue
			}
			if c, ok := im.consts[add.GetInput()[1-j]]; ok {
				if v, ok := biasVector(c, out); ok {
					bias, fused = v, true
				}
			}
		}
	}
	l := im.m.Linear(im.layerName(n), out, bias != nil, src)
	if im.m.Err() != nil {
		return false, nil
	}
	im.param(l.Name, graph.RoleWeight, w)
	if bias != nil {
		im.param(l.Name, graph.RoleBias, bias)
	}
	v := value{layer: l.Name, shape: []int{out}}
	if fused {
		return true, im.setOut(next[0], v)
	}
	return false, im.setOut(n, v)
}

func (im *importer) clip(n *onnxpb.NodeProto) error {
	x, err := im.input(n, 0)
	if err != nil {
		return err
	}
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	for i, p := range []*float32{&lo, &hi} {
		c, err := im.constant(n, i+1)
		if err != nil {
			return err
		}
		if c != nil {
			if len(c.f32) != 1 {
				return im.unsupported(n, "min/max must be float scalars")
			}
			*p = c.f32[0]
		}
	}
	var l *graph.Layer
	switch {
	case lo == 0 && hi == 6:
		l = im.m.ReLU6(im.layerName(n), x.layer)
	case lo == 0 && math.IsInf(float64(hi), 1):
		l = im.m.ReLU(im.layerName(n), x.layer)
	default:
		return im.unsupported(n, "clip to [%v, %v] (only [0, 6] and [0, inf))", lo, hi)
	}
	return im.setOut(n, value{layer: l.Name, shape: x.shape, squeezed: x.squeezed})
}

func (im *importer) pool(n *onnxpb.NodeProto, a map[string]*onnxpb.AttributeProto) error {
	x, err := im.input(n, 0)
	if err != nil {
		return err
	}
	if len(x.shape) != 3 || x.squeezed {
		return im.unsupported(n, "input of per-example shape %v (only 2-D NCHW)", x.shape)
	}
	if ap := string(a["auto_pad"].GetS()); ap != "" && ap != "NOTSET" {
		return im.unsupported(n, "auto_pad %s (write explicit pads)", ap)
	}
	k, ok := allEqual(intsOr(a, "kernel_shape", nil), 2)
	if !ok || k < 1 {
		return im.unsupported(n, "kernel_shape %v (only square)", intsOr(a, "kernel_shape", nil))
	}
	stride, ok := allEqual(intsOr(a, "strides", []int64{1, 1}), 2)
	if !ok || stride < 1 {
		return im.unsupported(n, "strides %v (only equal strides)", intsOr(a, "strides", nil))
	}
	pad, ok := allEqual(intsOr(a, "pads", []int64{0, 0, 0, 0}), 4)
	if !ok || pad < 0 {
		return im.unsupported(n, "pads %v (only equal pads on all sides)", intsOr(a, "pads", nil))
	}
	if intOr(a, "ceil_mode", 0) != 0 {
		return im.unsupported(n, "ceil_mode 1")
	}
	if d, ok := allEqual(intsOr(a, "dilations", []int64{1, 1}), 2); !ok || d != 1 {
		return im.unsupported(n, "dilations %v (only 1)", intsOr(a, "dilations", nil))
	}
	var l *graph.Layer
	if n.GetOpType() == "MaxPool" {
		if intOr(a, "storage_order", 0) != 0 {
			return im.unsupported(n, "storage_order 1")
		}
		l = im.m.MaxPool2d(im.layerName(n), k, stride, pad, x.layer)
	} else {
		if pad != 0 {
			return im.unsupported(n, "pads %d (average pooling without padding only)", pad)
		}
		l = im.m.AvgPool2d(im.layerName(n), k, stride, x.layer)
	}
	if im.m.Err() != nil {
		return nil
	}
	return im.setOut(n, value{layer: l.Name, shape: l.OutShape})
}

func (im *importer) batchNorm(n *onnxpb.NodeProto, a map[string]*onnxpb.AttributeProto) error {
	x, err := im.input(n, 0)
	if err != nil {
		return err
	}
	if intOr(a, "training_mode", 0) != 0 {
		return im.unsupported(n, "training_mode 1")
	}
	if x.squeezed || len(x.shape) != 3 && len(x.shape) != 1 {
		return im.unsupported(n, "input of per-example shape %v", x.shape)
	}
	c := x.shape[0]
	var ps [4][]float32
	for i := range ps {
		t, err := im.constant(n, i+1)
		if err != nil {
			return err
		}
		if t == nil || t.f32 == nil || len(t.f32) != c {
			return im.unsupported(n, "input %d must be a float constant of %d values", i+1, c)
		}
		ps[i] = t.f32
	}
	eps := float64(floatOr(a, "epsilon", 1e-5))
	mom := 1 - float64(floatOr(a, "momentum", 0.9))
	if !(eps > 0) || !(mom > 0 && mom <= 1) {
		return im.unsupported(n, "epsilon %v, momentum %v", eps, 1-mom)
	}
	l := im.m.BatchNorm(im.layerName(n), eps, mom, x.layer)
	if im.m.Err() != nil {
		return nil
	}
	for i, r := range []graph.Role{graph.RoleGamma, graph.RoleBeta, graph.RoleRunningMean, graph.RoleRunningVar} {
		im.param(l.Name, r, ps[i])
	}
	return im.setOut(n, value{layer: l.Name, shape: x.shape})
}
