package convop

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestReLUMatchesRectify compares ReLU's output and gradient with
// gorgonia.Rectify on inputs with negatives and exact zeros.
// The {4, 8, 50, 50} shape is split between goroutines.
func TestReLUMatchesRectify(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	run := func(dt tensor.Dtype, shape []int, ours bool) (y, dx []float64) {
		r := rand.New(rand.NewPCG(5, 5))
		xv := randT(r, dt, shape...)
		// Round a third of the values to exact zeros.
		switch d := xv.Data().(type) {
		case []float32:
			for i := 0; i < len(d); i += 3 {
				d[i] = 0
			}
		case []float64:
			for i := 0; i < len(d); i += 3 {
				d[i] = 0
			}
		}
		g := G.NewGraph()
		x := G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName("x"), G.WithValue(xv))
		var out *G.Node
		if ours {
			out = G.Must(ReLU(x))
		} else {
			out = G.Must(G.Rectify(x))
		}
		w := G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName("w"), G.WithValue(randT(r, dt, shape...)))
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, w))))
		if _, err := G.Grad(loss, x); err != nil {
			t.Fatal(err)
		}
		var yv G.Value
		G.Read(out, &yv)
		m := G.NewTapeMachine(g, G.BindDualValues(x))
		defer m.Close()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		gx, _ := x.Grad()
		return asF64(yv), asF64(gx)
	}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, shape := range [][]int{{3, 2, 5, 4}, {7, 9}, {4, 8, 50, 50}} {
			t.Run(fmt.Sprint(dt, shape), func(t *testing.T) {
				y1, d1 := run(dt, shape, true)
				y2, d2 := run(dt, shape, false)
				for i := range y1 {
					if y1[i] != y2[i] || d1[i] != d2[i] {
						t.Fatalf("at %d: y %g dx %g, Rectify y %g dx %g", i, y1[i], d1[i], y2[i], d2[i])
					}
				}
			})
		}
	}
}

func TestReLUBadDtype(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Int, G.WithShape(2, 2), G.WithName("x"))
	if _, err := ReLU(x); err == nil {
		t.Fatal("no error for int input")
	}
}
