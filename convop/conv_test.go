package convop

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/qatgo/qatgo/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type convCase struct {
	n, c, h, w   int
	cout, kh, kw int
	pad, stride  []int
}

func (cc convCase) String() string {
	return fmt.Sprintf("x=%dx%dx%dx%d w=%dx%dx%dx%d pad=%v stride=%v", cc.n, cc.c, cc.h, cc.w, cc.cout, cc.c, cc.kh, cc.kw, cc.pad, cc.stride)
}

var cases = []convCase{
	{n: 2, c: 1, h: 6, w: 6, cout: 3, kh: 3, kw: 3, pad: []int{1, 1}, stride: []int{1, 1}},
	{n: 3, c: 2, h: 7, w: 5, cout: 4, kh: 3, kw: 2, pad: []int{0, 1}, stride: []int{2, 1}},
	{n: 1, c: 3, h: 9, w: 8, cout: 2, kh: 2, kw: 3, pad: []int{2, 0}, stride: []int{1, 3}},
	{n: 5, c: 2, h: 5, w: 5, cout: 5, kh: 1, kw: 1, pad: []int{0, 0}, stride: []int{2, 2}},
	{n: 4, c: 3, h: 6, w: 7, cout: 3, kh: 5, kw: 5, pad: []int{2, 2}, stride: []int{1, 1}},
	{n: 3, c: 2, h: 4, w: 4, cout: 2, kh: 3, kw: 3, pad: []int{3, 3}, stride: []int{2, 2}}, // padding wider than the kernel reach
	{n: 2, c: 2, h: 6, w: 5, cout: 3, kh: 3, kw: 3, pad: []int{0, 1}, stride: []int{1, 1}}, // width-preserving, height shrinks
	{n: 2, c: 1, h: 5, w: 4, cout: 2, kh: 2, kw: 1, pad: []int{2, 0}, stride: []int{1, 1}}, // rows entirely in the padding
}

func randT(r *rand.Rand, dt tensor.Dtype, shp ...int) *tensor.Dense {
	size := 1
	for _, s := range shp {
		size *= s
	}
	if dt == tensor.Float32 {
		d := make([]float32, size)
		for i := range d {
			d[i] = float32(r.Float64()*2 - 1)
		}
		return tensor.New(tensor.WithShape(shp...), tensor.WithBacking(d))
	}
	d := make([]float64, size)
	for i := range d {
		d[i] = r.Float64()*2 - 1
	}
	return tensor.New(tensor.WithShape(shp...), tensor.WithBacking(d))
}

func asF64(v G.Value) []float64 {
	switch d := v.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	}
	panic(fmt.Sprintf("unexpected %T", v.Data()))
}

// runBoth builds loss = sum(conv(x, w) * r) with gorgonia.Conv2d or with
// Conv2d, and returns y, dL/dx and dL/dw.
func runBoth(t *testing.T, cc convCase, dt tensor.Dtype, ours bool, xv, wv, rv *tensor.Dense) (y, dx, dw []float64) {
	t.Helper()
	g := G.NewGraph()
	x := G.NewTensor(g, dt, 4, G.WithShape(cc.n, cc.c, cc.h, cc.w), G.WithName("x"), G.WithValue(xv.Clone()))
	w := G.NewTensor(g, dt, 4, G.WithShape(cc.cout, cc.c, cc.kh, cc.kw), G.WithName("w"), G.WithValue(wv.Clone()))
	var out *G.Node
	var err error
	if ours {
		out, err = Conv2dDiffInput(x, w, cc.pad, cc.stride)
	} else {
		out, err = G.Conv2d(x, w, tensor.Shape{cc.kh, cc.kw}, cc.pad, cc.stride, []int{1, 1})
	}
	if err != nil {
		t.Fatal(err)
	}
	r := G.NewTensor(g, dt, 4, G.WithShape(out.Shape()...), G.WithName("r"), G.WithValue(rv.Clone()))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, r))))
	if _, err := G.Grad(loss, x, w); err != nil {
		t.Fatal(err)
	}
	var yv G.Value
	G.Read(out, &yv)
	m := G.NewTapeMachine(g, G.BindDualValues(x, w))
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	y = asF64(yv)
	gx, _ := x.Grad()
	gw, _ := w.Grad()
	dx, dw = asF64(gx), asF64(gw)
	// A second run reuses the preallocated buffers and must give the same
	// output.
	m.Reset()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	for i, v := range asF64(yv) {
		if v != y[i] {
			t.Fatalf("second run: y[%d] = %g, first run %g", i, v, y[i])
		}
	}
	return y, dx, dw
}

func outShape(cc convCase) []int {
	oh := (cc.h+2*cc.pad[0]-cc.kh)/cc.stride[0] + 1
	ow := (cc.w+2*cc.pad[1]-cc.kw)/cc.stride[1] + 1
	return []int{cc.n, cc.cout, oh, ow}
}

// TestMatchesGorgonia compares the output and both gradients with
// gorgonia.Conv2d (im2col + gonum BLAS) in float32 and float64.
// The last case is large enough to split the images between goroutines
// (GOMAXPROCS is raised to 3 so that the split is uneven).
func TestMatchesGorgonia(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	big := convCase{n: 10, c: 4, h: 12, w: 11, cout: 8, kh: 3, kw: 3, pad: []int{1, 1}, stride: []int{1, 1}}
	if w := workersFor(big.n, 2*8*36*12*11); w != 3 {
		t.Fatalf("big case runs on %d goroutines, want 3", w)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		tol := 1e-12
		if dt == tensor.Float32 {
			tol = 1e-4 // sums of up to 1320 float32 products
		}
		for _, cc := range append(cases, big) {
			t.Run(dt.String()+" "+cc.String(), func(t *testing.T) {
				xv := randT(r, dt, cc.n, cc.c, cc.h, cc.w)
				wv := randT(r, dt, cc.cout, cc.c, cc.kh, cc.kw)
				rv := randT(r, dt, outShape(cc)...)
				y1, dx1, dw1 := runBoth(t, cc, dt, true, xv, wv, rv)
				y2, dx2, dw2 := runBoth(t, cc, dt, false, xv, wv, rv)
				for _, p := range []struct {
					name      string
					got, want []float64
				}{{"y", y1, y2}, {"dx", dx1, dx2}, {"dw", dw1, dw2}} {
					if len(p.got) != len(p.want) {
						t.Fatalf("%s: len %d, gorgonia %d", p.name, len(p.got), len(p.want))
					}
					for i := range p.got {
						if math.Abs(p.got[i]-p.want[i]) > tol*(1+math.Abs(p.want[i])) {
							t.Fatalf("%s[%d] = %g, gorgonia %g", p.name, i, p.got[i], p.want[i])
						}
					}
				}
			})
		}
	}
}

// naiveConv is a direct 7-loop convolution used as the independent
// reference for numerical gradients.
func naiveConv(cc convCase, x, w []float64) []float64 {
	os := outShape(cc)
	oh, ow := os[2], os[3]
	y := make([]float64, cc.n*cc.cout*oh*ow)
	for n := 0; n < cc.n; n++ {
		for o := 0; o < cc.cout; o++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var s float64
					for c := 0; c < cc.c; c++ {
						for i := 0; i < cc.kh; i++ {
							for j := 0; j < cc.kw; j++ {
								iy := oy*cc.stride[0] - cc.pad[0] + i
								ix := ox*cc.stride[1] - cc.pad[1] + j
								if iy < 0 || iy >= cc.h || ix < 0 || ix >= cc.w {
									continue
								}
								s += x[((n*cc.c+c)*cc.h+iy)*cc.w+ix] * w[((o*cc.c+c)*cc.kh+i)*cc.kw+j]
							}
						}
					}
					y[((n*cc.cout+o)*oh+oy)*ow+ox] = s
				}
			}
		}
	}
	return y
}

// TestNumericalGradients checks y against the direct convolution and the
// gradients of loss = sum(y * r) against float64 central differences of the
// direct convolution, for every input and kernel element.
func TestNumericalGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, cc := range cases {
		t.Run(cc.String(), func(t *testing.T) {
			xv := randT(r, tensor.Float64, cc.n, cc.c, cc.h, cc.w)
			wv := randT(r, tensor.Float64, cc.cout, cc.c, cc.kh, cc.kw)
			rv := randT(r, tensor.Float64, outShape(cc)...)
			y, dx, dw := runBoth(t, cc, tensor.Float64, true, xv, wv, rv)
			x := xv.Data().([]float64)
			w := wv.Data().([]float64)
			rr := rv.Data().([]float64)
			loss := func() float64 {
				var s float64
				for i, v := range naiveConv(cc, x, w) {
					s += v * rr[i]
				}
				return s
			}
			for i, v := range naiveConv(cc, x, w) {
				if math.Abs(v-y[i]) > 1e-12 {
					t.Fatalf("y[%d] = %g, direct %g", i, y[i], v)
				}
			}
			check := func(name string, p []float64, grad []float64) {
				num := gradcheck.Numerical(p, 1e-5, loss)
				if err := gradcheck.Compare("d"+name, grad, num, gradcheck.Tolerance{Rel: 1e-6, Abs: 1e-6}); err != nil {
					t.Fatal(err)
				}
			}
			check("x", x, dx)
			check("w", w, dw)
		})
	}
}

func TestErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 8, 8), G.WithName("x"))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithName("w"))
	w2 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 2, 3, 3), G.WithName("w2"))
	wBig := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 9, 9), G.WithName("wbig"))
	w64 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(4, 3, 3, 3), G.WithName("w64"))
	m := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 3), G.WithName("m"))
	tests := []struct {
		name        string
		x, w        *G.Node
		pad, stride []int
	}{
		{"channel mismatch", x, w2, nil, nil},
		{"kernel larger than input", x, wBig, nil, nil},
		{"dtype mismatch", x, w64, nil, nil},
		{"not 4-D", x, m, nil, nil},
		{"negative pad", x, w, []int{-1, 0}, nil},
		{"zero stride", x, w, nil, []int{0, 1}},
		{"short pad", x, w, []int{1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Conv2d(tc.x, tc.w, tc.pad, tc.stride); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestHash checks that every parameter changes the op hash.
func TestHash(t *testing.T) {
	base := params{kh: 3, kw: 3, padH: 1, padW: 1, strideH: 1, strideW: 1}
	variants := []params{base}
	for i := range 6 {
		p := base
		f := []*int{&p.kh, &p.kw, &p.padH, &p.padW, &p.strideH, &p.strideW}
		*f[i]++
		variants = append(variants, p)
	}
	seen := map[uint32]bool{}
	for _, p := range variants {
		h := (&convOp{params: p}).Hashcode()
		if seen[h] {
			t.Fatalf("hash collision for %v", p)
		}
		seen[h] = true
	}
	if (&convOp{params: base}).Hashcode() != (&convOp{params: base}).Hashcode() {
		t.Fatal("equal ops hash differently")
	}
	if (&convOp{params: base}).Hashcode() == (&convOp{params: base, diffInput: true}).Hashcode() {
		t.Fatal("hash ignores diffInput")
	}
	a := &convGradOp{params: base, wrt: wrtInput, shape: tensor.Shape{1, 2, 3, 4}}
	b := &convGradOp{params: base, wrt: wrtInput, shape: tensor.Shape{1, 2, 3, 5}}
	if a.Hashcode() == b.Hashcode() {
		t.Fatal("input grad hash ignores the input shape")
	}
	c := &convGradOp{params: base, wrt: wrtKernel, shape: tensor.Shape{1, 2, 3, 3}}
	if c.Hashcode() == a.Hashcode() || c.Hashcode() == (&convOp{params: base}).Hashcode() {
		t.Fatal("different ops share a hash")
	}
	if d := (&convGradOp{params: base, wrt: wrtKernel, shape: a.shape}); d.Hashcode() == a.Hashcode() {
		t.Fatal("input and kernel gradient of the same shape share a hash")
	}
}

func TestPreallocMismatch(t *testing.T) {
	op := &convOp{params: params{kh: 3, kw: 3, strideH: 1, strideW: 1}}
	r := rand.New(rand.NewPCG(1, 1))
	x := randT(r, tensor.Float32, 1, 1, 5, 5)
	w := randT(r, tensor.Float32, 2, 1, 3, 3)
	bad := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(1, 2, 4, 3))
	if _, err := op.UsePreallocDo(bad, x, w); err == nil {
		t.Fatal("wrong prealloc shape accepted")
	}
	good := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(1, 2, 3, 3))
	if _, err := op.UsePreallocDo(good, x, w); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Do(x); err == nil {
		t.Fatal("wrong arity accepted")
	}
}

// TestLeafInputNotDifferentiated checks that Conv2d on a graph input builds
// no input gradient (Grad with respect to x fails, with respect to w
// works) and that the weight gradient equals the one of Conv2dDiffInput.
func TestLeafInputNotDifferentiated(t *testing.T) {
	build := func(diffInput bool) (*G.ExprGraph, *G.Node, *G.Node, *G.Node) {
		r := rand.New(rand.NewPCG(11, 12))
		g := G.NewGraph()
		x := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 2, 5, 5), G.WithName("x"), G.WithValue(randT(r, tensor.Float64, 2, 2, 5, 5)))
		w := G.NewTensor(g, tensor.Float64, 4, G.WithShape(3, 2, 3, 3), G.WithName("w"), G.WithValue(randT(r, tensor.Float64, 3, 2, 3, 3)))
		conv := Conv2d
		if diffInput {
			conv = Conv2dDiffInput
		}
		y := G.Must(conv(x, w, []int{1, 1}, nil))
		loss := G.Must(G.Sum(G.Must(G.Square(y))))
		return g, x, w, loss
	}
	_, x, _, loss := build(false)
	if _, err := G.Grad(loss, x); err == nil {
		t.Fatal("Grad with respect to a leaf input succeeded")
	}
	var dws [2][]float64
	for i, diffInput := range []bool{false, true} {
		g, _, w, loss := build(diffInput)
		if _, err := G.Grad(loss, w); err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g, G.BindDualValues(w))
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		gw, _ := w.Grad()
		dws[i] = asF64(gw)
		m.Close()
	}
	for i := range dws[0] {
		if math.Abs(dws[0][i]-dws[1][i]) > 1e-12 {
			t.Fatalf("dw[%d] = %g without input gradient, %g with", i, dws[0][i], dws[1][i])
		}
	}
}

// TestDoReusesOutput checks that a second Do writes into the tensor of the
// first (no allocation per training step) with the right values, and that
// a cached tensor passed back as an input is not overwritten.
func TestDoReusesOutput(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	op := &reluOp{dims: 4}
	x1 := randT(r, tensor.Float64, 2, 3, 4, 4)
	y1, err := op.Do(x1)
	if err != nil {
		t.Fatal(err)
	}
	x2 := randT(r, tensor.Float64, 2, 3, 4, 4)
	y2, err := op.Do(x2)
	if err != nil {
		t.Fatal(err)
	}
	if y1.(*tensor.Dense) != y2.(*tensor.Dense) {
		t.Fatal("second Do allocated a new output")
	}
	for i, v := range x2.Data().([]float64) {
		if want := max(v, 0); y2.Data().([]float64)[i] != want {
			t.Fatalf("y[%d] = %g, want %g", i, y2.Data().([]float64)[i], want)
		}
	}
	in := y2.(*tensor.Dense)
	before := append([]float64(nil), in.Data().([]float64)...)
	y3, err := op.Do(in)
	if err != nil {
		t.Fatal(err)
	}
	if y3.(*tensor.Dense) == in {
		t.Fatal("output aliases the input")
	}
	for i, v := range in.Data().([]float64) {
		if v != before[i] {
			t.Fatal("input was overwritten")
		}
	}
}

// TestIm2colFlat checks the flat fast path of im2col and col2im against the
// general row-by-row code on every width-preserving unit-stride geometry
// with small sizes.
func TestIm2colFlat(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	count := 0
	for h := 1; h <= 6; h++ {
		for w := 1; w <= 6; w++ {
			for kh := 1; kh <= 4; kh++ {
				for kw := 1; kw <= 5; kw += 2 { // odd kernel widths keep the width with pad (kw-1)/2
					for padH := 0; padH < 4; padH++ {
						g := newGeom(2, h, w, 1, kh, kw, padH, (kw-1)/2, 1, 1)
						if g.outH <= 0 || g.outW <= 0 || !g.flat() {
							continue
						}
						count++
						x := make([]float64, g.c*h*w)
						for i := range x {
							x[i] = r.Float64()
						}
						c1 := make([]float64, g.kdim*g.pixels)
						c2 := make([]float64, g.kdim*g.pixels)
						for i := range c1 {
							c1[i] = math.NaN() // every entry must be written
						}
						im2colFlat(&g, x, c1)
						im2colGeneral(&g, x, c2)
						for i := range c1 {
							if c1[i] != c2[i] {
								t.Fatalf("im2col %+v: col[%d] = %g, general %g", g, i, c1[i], c2[i])
							}
						}
						col := make([]float64, len(c1))
						for i := range col {
							col[i] = r.Float64()
						}
						d1 := make([]float64, len(x))
						d2 := make([]float64, len(x))
						col2imGeneral(&g, col, d2)
						col2imFlat(&g, col, d1)
						for i := range d1 {
							if math.Abs(d1[i]-d2[i]) > 1e-12 {
								t.Fatalf("col2im %+v: dx[%d] = %g, general %g", g, i, d1[i], d2[i])
							}
						}
					}
				}
			}
		}
	}
	if count < 50 {
		t.Fatalf("only %d geometries tested", count)
	}
}
