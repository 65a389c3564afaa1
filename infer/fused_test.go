package infer

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// fusedCNN is a small CNN whose convolutions take every fused form: conv+ReLU+pool with an odd
// pooled width and 17 channels (two channel tiles, a partial one), a conv without pool, a
// strided conv, and a conv whose pool cannot be fused (its output is read twice).
func fusedCNN(t testing.TB, seed uint64) *qmodel.Model {
	r := rand.New(rand.NewPCG(seed, 7))
	b := qmodel.NewBuilder("fused-cnn")
	x := b.Input("image", qmodel.Uint8, []int{15, 11, 3}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	bias := func(n int) []int32 {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(r.IntN(2001) - 1000)
		}
		return v
	}
	conv := func(name string, in qmodel.TensorID, inC, outC, k, stride, pad int, act qmodel.Activation) qmodel.TensorID {
		return b.Conv2D(name, in, qmodel.Weights{Values: randInt8s(r, outC*k*k*inC, -127, 127), Shape: []int{outC, k, k, inC}, Scales: randScales(r, outC, 0.002, 0.006)},
			bias(outC), qmodel.Conv2DOptions{StrideH: stride, StrideW: stride, PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad, Act: act},
			quant.Params{Scale: 0.02, ZeroPoint: int32(r.IntN(40) - 128)})
	}
	c1 := conv("conv1", q, 3, 17, 3, 1, 1, qmodel.ActReLU)                     // 15x11x17
	p1 := b.MaxPool2D("pool1", c1, qmodel.PoolOptions{KernelH: 2, KernelW: 2}) // 7x5x17
	c2 := conv("conv2", p1, 17, 24, 3, 1, 1, qmodel.ActNone)                   // 7x5x24, no pool
	c3 := conv("conv3", c2, 24, 8, 3, 2, 1, qmodel.ActReLU)                    // 4x3x8
	p3 := b.MaxPool2D("pool3", c3, qmodel.PoolOptions{KernelH: 2, KernelW: 2}) // 2x1x8
	a3 := b.AvgPool2D("avg3", c3, qmodel.PoolOptions{KernelH: 2, KernelW: 2})  // conv3's second reader
	s3 := b.Add("sum3", p3, a3, qmodel.ActNone, quant.Params{Scale: 0.03, ZeroPoint: -5})
	f := b.Reshape("flatten", s3, []int{8 * 2 * 1})
	d := b.FullyConnected("dense", f, qmodel.Weights{Values: randInt8s(r, 10*16, -127, 127), Shape: []int{10, 16}, Scales: randScales(r, 10, 0.001, 0.002)},
		bias(10), qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(b.Dequantize("logits", d))
	return build(t, b)
}

// TestFusedMatchesOps checks, on every kernels path, that sessions running the fused
// convolutions give exactly the outputs of a KeepIntermediate session (which runs every op on
// its own), single- and multi-threaded, for the MNIST CNN, the BN CNN and a CNN with odd shapes.
func TestFusedMatchesOps(t *testing.T) {
	defer kernels.SetPath(kernels.Path())
	for _, tc := range []struct {
		name string
		m    *qmodel.Model
	}{{"mnist", mnistCNN(t, 3)}, {"bn", bnCNN(t, 2)}, {"odd", fusedCNN(t, 4)}} {
		md, err := Load(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		nFused := 0
		for i := range md.steps {
			if md.steps[i].fc != nil {
				nFused++
			}
		}
		if tc.name == "mnist" && !md.steps[1].shiftedIn {
			t.Fatalf("mnist: conv1 does not read the uint8 input directly")
		}
		if tc.name == "odd" {
			// conv1 takes its pool; conv3 runs fused alone, since its output has two readers.
			for i := range md.steps {
				st := &md.steps[i]
				if (st.name == "conv1" || st.name == "conv3") && (st.fc == nil || (st.pool != nil) != (st.name == "conv1")) {
					t.Fatalf("odd: %s fused %v, with pool %v", st.name, st.fc != nil, st.pool != nil)
				}
			}
		}
		for i := range md.steps {
			if st := &md.steps[i]; st.kind == qmodel.OpReshape && md.plan.slot[st.out] != md.plan.slot[st.in] {
				t.Errorf("%s: reshape %s copies (output buffer %d, input %d)", tc.name, st.name, md.plan.slot[st.out], md.plan.slot[st.in])
			}
		}
		if nFused < 2 {
			t.Fatalf("%s: %d fused convolutions, want at least 2", tc.name, nFused)
		}
		const batch = 19
		r := rand.New(rand.NewPCG(5, 6))
		in := make([]byte, batch*md.InputSize())
		for i := range in {
			in[i] = byte(r.IntN(256))
		}
		ref := md.NewSessionWith(SessionOptions{KeepIntermediate: true})
		want, err := ref.RunUint8(in, batch)
		if err != nil {
			t.Fatal(err)
		}
		want = append([]float32(nil), want...)
		for _, p := range kernels.Paths() {
			if err := kernels.SetPath(p); err != nil {
				t.Fatal(err)
			}
			for _, threads := range []int{1, 2} {
				s := md.NewSessionWith(SessionOptions{Threads: threads})
				got, err := s.RunUint8(in, batch)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s path %s threads %d: outputs differ from the op-by-op run", tc.name, p, threads)
				}
				one, err := s.RunUint8(in[:md.InputSize()], 1)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(one, want[:md.OutputSize()]) {
					t.Errorf("%s path %s threads %d: batch-1 output differs", tc.name, p, threads)
				}
				s.Close()
			}
		}
	}
}

// TestLargeConvNotFused checks that a convolution above maxFusedMACs keeps the GEMM path (which
// splits one image over the kernel threads) and that a small one is fused.
func TestLargeConvNotFused(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	b := qmodel.NewBuilder("large")
	x := b.Input("x", qmodel.Int8, []int{64, 64, 16}, qmodel.PerTensor(0.02, 0))
	c := b.Conv2D("big", x, qmodel.Weights{Values: randInt8s(r, 64*9*16, -127, 127), Shape: []int{64, 3, 3, 16}, Scales: randScales(r, 64, 0.001, 0.002)},
		nil, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, quant.Params{Scale: 0.05, ZeroPoint: 0})
	small := b.Conv2D("small", c, qmodel.Weights{Values: randInt8s(r, 4*64, -127, 127), Shape: []int{4, 1, 1, 64}, Scales: randScales(r, 4, 0.001, 0.002)},
		nil, qmodel.Conv2DOptions{StrideH: 8, StrideW: 8}, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(small)
	md, err := Load(build(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if md.steps[0].fc != nil || md.steps[1].fc == nil {
		t.Errorf("fused: big %v, small %v; want only the small one", md.steps[0].fc != nil, md.steps[1].fc != nil)
	}
}
