package convop

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type poolCase struct {
	n, c, h, w          int
	kernel, pad, stride []int
}

// runPool returns y and dL/dx for loss = sum(pool(x) * r), with
// gorgonia.MaxPool2D or MaxPool2D.
func runPool(t *testing.T, pc poolCase, dt tensor.Dtype, ours bool, xv *tensor.Dense, r *rand.Rand) (y, dx []float64) {
	t.Helper()
	g := G.NewGraph()
	// x is the output of an op so that it is differentiable in both graphs.
	x0 := G.NewTensor(g, dt, 4, G.WithShape(pc.n, pc.c, pc.h, pc.w), G.WithName("x0"), G.WithValue(xv.Clone()))
	x := G.Must(G.Neg(G.Must(G.Neg(x0))))
	var out *G.Node
	var err error
	if ours {
		out, err = MaxPool2D(x, tensor.Shape(pc.kernel), pc.pad, pc.stride)
	} else {
		out, err = G.MaxPool2D(x, tensor.Shape(pc.kernel), pc.pad, pc.stride)
	}
	if err != nil {
		t.Fatal(err)
	}
	rr := G.NewTensor(g, dt, 4, G.WithShape(out.Shape()...), G.WithName("r"), G.WithValue(randT(r, dt, out.Shape()...)))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, rr))))
	if _, err := G.Grad(loss, x0); err != nil {
		t.Fatal(err)
	}
	var yv G.Value
	G.Read(out, &yv)
	m := G.NewTapeMachine(g, G.BindDualValues(x0))
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	gx, _ := x0.Grad()
	return asF64(yv), asF64(gx)
}

// TestMaxPoolMatchesGorgonia compares output and input gradient with
// gorgonia.MaxPool2D on random inputs (no ties).
// The last two cases are large enough to be split between goroutines
// (GOMAXPROCS 3 makes the split uneven).
func TestMaxPoolMatchesGorgonia(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	cases := []poolCase{
		{n: 2, c: 3, h: 8, w: 8, kernel: []int{2, 2}, pad: []int{0, 0}, stride: []int{2, 2}},
		{n: 1, c: 2, h: 7, w: 9, kernel: []int{2, 2}, pad: []int{0, 0}, stride: []int{2, 2}}, // odd sizes drop the last row/column
		{n: 2, c: 2, h: 7, w: 6, kernel: []int{3, 3}, pad: []int{1, 1}, stride: []int{2, 2}},
		{n: 1, c: 1, h: 6, w: 7, kernel: []int{3, 2}, pad: []int{0, 1}, stride: []int{1, 1}}, // overlapping windows
		{n: 5, c: 4, h: 60, w: 60, kernel: []int{2, 2}, pad: []int{0, 0}, stride: []int{2, 2}},
		{n: 5, c: 4, h: 60, w: 60, kernel: []int{3, 3}, pad: []int{1, 1}, stride: []int{2, 2}},
	}
	if elemWorkers(5*4, 60*60) != 3 {
		t.Fatal("large cases are not split")
	}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, pc := range cases {
			t.Run(fmt.Sprintf("%v %+v", dt, pc), func(t *testing.T) {
				xv := randT(rand.New(rand.NewPCG(1, 2)), dt, pc.n, pc.c, pc.h, pc.w)
				y1, dx1 := runPool(t, pc, dt, true, xv, rand.New(rand.NewPCG(3, 4)))
				y2, dx2 := runPool(t, pc, dt, false, xv, rand.New(rand.NewPCG(3, 4)))
				if len(y1) != len(y2) || len(dx1) != len(dx2) {
					t.Fatalf("sizes %d/%d, gorgonia %d/%d", len(y1), len(dx1), len(y2), len(dx2))
				}
				for i := range y1 {
					if y1[i] != y2[i] {
						t.Fatalf("y[%d] = %g, gorgonia %g", i, y1[i], y2[i])
					}
				}
				for i := range dx1 {
					if math.Abs(dx1[i]-dx2[i]) > 1e-6 {
						t.Fatalf("dx[%d] = %g, gorgonia %g", i, dx1[i], dx2[i])
					}
				}
			})
		}
	}
}

// TestMaxPoolHand checks a hand-computed case with a tie: the first
// position in row-major order wins and gets the gradient.
func TestMaxPoolHand(t *testing.T) {
	op := &maxPoolOp{params: params{kh: 2, kw: 2, strideH: 2, strideW: 2}, state: new(poolState)}
	x := tensor.New(tensor.WithShape(1, 1, 2, 4), tensor.WithBacking([]float64{
		1, 5, 7, 2,
		5, 3, 7, 7,
	}))
	y, err := op.Do(x)
	if err != nil {
		t.Fatal(err)
	}
	if got := y.Data().([]float64); got[0] != 5 || got[1] != 7 {
		t.Fatalf("y = %v, want [5 7]", got)
	}
	gop := &maxPoolGradOp{params: op.params, xShape: tensor.Shape{1, 1, 2, 4}, state: op.state}
	dy := tensor.New(tensor.WithShape(1, 1, 1, 2), tensor.WithBacking([]float64{10, 20}))
	dx, err := gop.Do(y, dy)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 10, 20, 0, 0, 0, 0, 0}
	for i, v := range dx.Data().([]float64) {
		if v != want[i] {
			t.Fatalf("dx = %v, want %v", dx.Data(), want)
		}
	}
}

func TestMaxPoolErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 4, 4), G.WithName("x"))
	m := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 4), G.WithName("m"))
	tests := []struct {
		name        string
		x           *G.Node
		k           tensor.Shape
		pad, stride []int
	}{
		{"not 4-D", m, tensor.Shape{2, 2}, nil, []int{2, 2}},
		{"zero stride", x, tensor.Shape{2, 2}, nil, []int{0, 2}},
		{"pad as large as kernel", x, tensor.Shape{2, 2}, []int{2, 0}, []int{2, 2}},
		{"kernel too large", x, tensor.Shape{5, 5}, nil, []int{1, 1}},
		{"explicit 4-value pad", x, tensor.Shape{2, 2}, []int{0, 0, 0, 0}, []int{2, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MaxPool2D(tc.x, tc.k, tc.pad, tc.stride); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
