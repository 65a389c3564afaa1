package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// In evaluation (and after the BN freeze) the folded Conv+BN must equal Conv followed by BN with
// running statistics; in training before the freeze it must equal Conv followed by batch-stat BN.
func TestFoldedBNMatchesUnfolded(t *testing.T) {
	for _, o := range []Options{{Batch: 3}, {Batch: 3, Train: true}, {Batch: 3, Train: true, FreezeBN: true}} {
		m := NewModel("f", []int{3, 6, 6}, tensor.Float64, 9)
		m.Conv2d("c", Conv{Out: 4, Kernel: 3, Pad: 1, Bias: true})
		m.BatchNorm("bn", 0, 0)
		m.ReLU6("r")
		m.Flatten("fl")
		m.Linear("fc", 5, false)
		m.BatchNorm("bn1d", 0, 0)
		rng := rand.New(rand.NewPCG(1, 1))
		for _, p := range m.Params() {
			d := p.Value.Data().([]float64)
			for i := range d {
				switch p.Role {
				case RoleRunningVar:
					d[i] = 0.2 + rng.Float64()
				case RoleWeight:
				default:
					d[i] = rng.NormFloat64()
				}
			}
		}
		outs := [2][]float64{}
		for k, fold := range []bool{false, true} {
			oo := o
			oo.FoldBN = fold
			n, err := m.Build(oo)
			if err != nil {
				t.Fatal(err)
			}
			x := n.XVal.Data().([]float64)
			for i := range x {
				x[i] = math.Cos(float64(i) * 0.7)
			}
			vm := G.NewTapeMachine(n.G)
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			outs[k] = append([]float64(nil), n.Out.Value().Data().([]float64)...)
			vm.Close()
		}
		for i := range outs[0] {
			if d := math.Abs(outs[0][i] - outs[1][i]); d > 1e-5*math.Max(1, math.Abs(outs[0][i])) {
				t.Fatalf("%+v: out[%d] unfolded %v folded %v", o, i, outs[0][i], outs[1][i])
			}
		}
	}
}

func TestGroupsAndSites(t *testing.T) {
	m := NewModel("g", []int{3, 8, 8}, tensor.Float32, 1)
	m.Conv2d("c1", Conv{Out: 8, Kernel: 3, Pad: 1})
	m.BatchNorm("b1", 0, 0)
	m.ReLU6("r1")
	m.Conv2d("dw", Conv{Out: 8, Kernel: 3, Pad: 1, Groups: 8})
	m.BatchNorm("b2", 0, 0)
	m.Add("add", "r1", "b2")
	m.ReLU("r2")
	m.MaxPool2d("p", 2, 0, 0)
	m.GlobalAvgPool("gap")
	m.Dropout("drop", 0.1)
	m.Linear("fc", 10, true)
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range m.Groups() {
		got = append(got, g.Op+":"+g.BN+":"+string(g.Act)+":"+g.Out)
	}
	want := []string{"c1:b1:relu6:r1", "dw:b2::b2", "add::relu:r2", "p:::p", "gap:::gap", "drop:::drop", "fc:::fc"}
	if len(got) != len(want) {
		t.Fatalf("groups %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("group %d = %s, want %s", i, got[i], want[i])
		}
	}
	var sites []string
	for _, s := range m.Sites() {
		sites = append(sites, s.Name)
	}
	wantS := []string{"input", "c1.weight", "c1.out", "dw.weight", "dw.out", "add.out", "gap.out", "fc.weight", "fc.out"}
	if len(sites) != len(wantS) {
		t.Fatalf("sites %v", sites)
	}
	for i := range wantS {
		if sites[i] != wantS[i] {
			t.Fatalf("site %d = %s, want %s", i, sites[i], wantS[i])
		}
	}
	// errors are reported, not panics
	bad := NewModel("bad", []int{3, 8, 8}, tensor.Float32, 1)
	bad.Linear("fc", 3, false)
	if bad.Err() == nil {
		t.Fatal("linear on an image accepted")
	}
	dup := NewModel("dup", []int{3, 8, 8}, tensor.Float32, 1)
	dup.ReLU("x")
	dup.ReLU("x")
	if dup.Err() == nil {
		t.Fatal("duplicate name accepted")
	}
	if _, err := dup.Build(Options{Batch: 1}); err == nil {
		t.Fatal("Build of a broken model succeeded")
	}
}

func TestDropoutMasksSeeded(t *testing.T) {
	m := NewModel("d", []int{100}, tensor.Float64, 1)
	m.Dropout("drop", 0.25)
	n, err := m.Build(Options{Batch: 10, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	x := n.XVal.Data().([]float64)
	for i := range x {
		x[i] = 1
	}
	vm := G.NewTapeMachine(n.G)
	defer vm.Close()
	run := func(seed uint64) []float64 {
		n.FillMasks(rand.New(rand.NewPCG(seed, 0)))
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float64(nil), n.Out.Value().Data().([]float64)...)
	}
	a, b, c := run(1), run(1), run(2)
	zeros, same := 0, true
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed, different masks")
		}
		if a[i] != c[i] {
			same = false
		}
		switch a[i] {
		case 0:
			zeros++
		case 1 / 0.75:
		default:
			t.Fatalf("output %v is neither 0 nor 1/(1-p)", a[i])
		}
	}
	if same || zeros < 150 || zeros > 350 {
		t.Fatalf("%d of 1000 dropped (want about 250); seeds differ: %v", zeros, !same)
	}
	// evaluation mode is the identity
	e, err := m.Build(Options{Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	if e.Out != e.X {
		t.Fatal("dropout is not the identity in evaluation")
	}
}
