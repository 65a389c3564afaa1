// Package gradcheck is the module's one gradient checker for tests: it compares analytic
// gradients (Gorgonia's symbolic differentiation of the package's custom ops) with float64
// central differences,
//
//	df/dv[i] ~ (f(v + h e_i) - f(v - h e_i)) / 2h,   h = Eps * max(1, |v[i]|),
//
// whose error is O(h^2) for smooth f. It is meant for small tensors, where every element can be
// perturbed; Sample picks a few elements for larger ones.
package gradcheck

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DefaultEps is the relative step of the central differences.
const DefaultEps = 1e-6

// Tolerance bounds |analytic - numerical| by Abs + Rel*|numerical| per element.
type Tolerance struct{ Rel, Abs float64 }

// Default is the tolerance for float64 graphs with DefaultEps: central differences of smooth
// functions of O(1) values agree to about 1e-9.
var Default = Tolerance{Rel: 1e-6, Abs: 1e-6}

// Numerical returns the central differences of f with respect to every element of v, which f
// reads; v is restored afterwards.
func Numerical(v []float64, eps float64, f func() float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	return NumericalAt(v, idx, eps, f)
}

// NumericalAt returns the central differences of f with respect to v[idx[k]] for each k.
func NumericalAt(v []float64, idx []int, eps float64, f func() float64) []float64 {
	g := make([]float64, len(idx))
	for k, i := range idx {
		old := v[i]
		h := eps * math.Max(1, math.Abs(old))
		v[i] = old + h
		fp := f()
		v[i] = old - h
		fm := f()
		v[i] = old
		g[k] = (fp - fm) / (2 * h)
	}
	return g
}

// Sample returns n distinct indices below size spread over the range (the first, the last and
// evenly spaced ones between; only the first for n = 1, none for n <= 0), or all of them when
// size <= n.
func Sample(size, n int) []int {
	switch {
	case n <= 0:
		return []int{}
	case size <= n:
		idx := make([]int, max(size, 0))
		for i := range idx {
			idx[i] = i
		}
		return idx
	case n == 1:
		return []int{0}
	}
	idx := make([]int, 0, n)
	for k := 0; k < n; k++ {
		i := k * (size - 1) / (n - 1)
		if len(idx) == 0 || idx[len(idx)-1] != i {
			idx = append(idx, i)
		}
	}
	return idx
}

// Compare returns an error naming every element where analytic and numerical differ by more
// than tol (at most ten are listed), or nil.
func Compare(name string, analytic, numerical []float64, tol Tolerance) error {
	if len(analytic) != len(numerical) {
		return fmt.Errorf("%s: %d analytic and %d numerical values", name, len(analytic), len(numerical))
	}
	var bad []string
	n := 0
	for i, num := range numerical {
		a := analytic[i]
		if d := math.Abs(a - num); !(d <= tol.Abs+tol.Rel*math.Abs(num)) {
			n++
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("[%d]: analytic %.9g numerical %.9g", i, a, num))
			}
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d of %d gradient elements differ: %s", name, n, len(numerical), strings.Join(bad, "; "))
}

// Options configures Graph. The zero value means DefaultEps, Default and seed 1.
type Options struct {
	Eps  float64
	Tol  Tolerance
	Seed uint64
}

// Graph checks the gradient of loss = sum(out .* r), for a fixed random r of out's shape, with
// respect to every element of every node in wrt (float64 nodes with values) against central
// differences, running the graph g on a TapeMachine. It adds r and the loss to g. The nodes of
// wrt are left holding their original values and the graph their forward values.
func Graph(g *G.ExprGraph, out *G.Node, wrt []*G.Node, o Options) error {
	if o.Eps == 0 {
		o.Eps = DefaultEps
	}
	if o.Tol == (Tolerance{}) {
		o.Tol = Default
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if out.Dtype() != tensor.Float64 {
		return fmt.Errorf("gradcheck: output %s is %v, need float64", out.Name(), out.Dtype())
	}
	rng := rand.New(rand.NewPCG(o.Seed, 7))
	rs := out.Shape()
	rv := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(rs...))
	for i, d := 0, rv.Data().([]float64); i < len(d); i++ {
		d[i] = rng.NormFloat64()
	}
	r := G.NewTensor(g, tensor.Float64, rs.Dims(), G.WithShape(rs...), G.WithName("gradcheck-r-"+out.Name()), G.WithValue(rv))
	prod, err := G.HadamardProd(out, r)
	if err != nil {
		return fmt.Errorf("gradcheck: %w", err)
	}
	loss, err := G.Sum(prod)
	if err != nil {
		return fmt.Errorf("gradcheck: %w", err)
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		return fmt.Errorf("gradcheck: %w", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	var runErr error
	run := func() float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil && runErr == nil {
			runErr = err
		}
		if runErr != nil {
			return math.NaN()
		}
		return loss.Value().Data().(float64)
	}
	run()
	if runErr != nil {
		return fmt.Errorf("gradcheck: %w", runErr)
	}
	analytic := make([][]float64, len(wrt))
	for i, gn := range grads {
		d, ok := gn.Value().Data().([]float64)
		if !ok {
			return fmt.Errorf("gradcheck: gradient of %s is %v, need float64", wrt[i].Name(), gn.Value().Dtype())
		}
		analytic[i] = append([]float64(nil), d...) // the numerical runs overwrite the node values
	}
	var errs []error
	for i, w := range wrt {
		v, ok := w.Value().Data().([]float64)
		if !ok {
			return fmt.Errorf("gradcheck: %s is %v, need float64", w.Name(), w.Dtype())
		}
		num := Numerical(v, o.Eps, run)
		if runErr != nil {
			return fmt.Errorf("gradcheck: %w", runErr)
		}
		if err := Compare("d/d"+w.Name(), analytic[i], num, o.Tol); err != nil {
			errs = append(errs, err)
		}
	}
	run() // leave the forward values of the unperturbed inputs
	return errors.Join(errs...)
}
