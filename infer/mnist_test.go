package infer

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// mnistCNN builds the ggml MNIST CNN architecture in int8 with random weights: uint8 image
// [28,28,1] -> Quantize -> conv3x3 1->8 pad 1 ReLU -> maxpool 2 -> conv3x3 8->16 pad 1 ReLU ->
// maxpool 2 -> reshape 784 -> dense 784->10 -> Dequantize. Scales are chosen so that random
// weights keep activations inside the int8 range.
func mnistCNN(t testing.TB, seed uint64) *qmodel.Model {
	r := rand.New(rand.NewPCG(seed, 99))
	b := qmodel.NewBuilder("mnist-cnn-random")
	b.SetProducer("infer test (random weights)")
	b.SetLabels([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})
	x := b.Input("image", qmodel.Uint8, []int{28, 28, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quantize", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	bias := func(n int) []int32 {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(r.IntN(2001) - 1000)
		}
		return v
	}
	c1 := b.Conv2D("conv1", q, qmodel.Weights{Values: randInt8s(r, 8*9, -127, 127), Shape: []int{8, 3, 3, 1}, Scales: randScales(r, 8, 0.003, 0.006)},
		bias(8), qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU}, quant.Params{Scale: 0.01, ZeroPoint: -128})
	p1 := b.MaxPool2D("pool1", c1, qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	c2 := b.Conv2D("conv2", p1, qmodel.Weights{Values: randInt8s(r, 16*9*8, -127, 127), Shape: []int{16, 3, 3, 8}, Scales: randScales(r, 16, 0.002, 0.004)},
		bias(16), qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU}, quant.Params{Scale: 0.01, ZeroPoint: -128})
	p2 := b.MaxPool2D("pool2", c2, qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	f := b.Reshape("flatten", p2, []int{784})
	d := b.FullyConnected("dense", f, qmodel.Weights{Values: randInt8s(r, 10*784, -127, 127), Shape: []int{10, 784}, Scales: randScales(r, 10, 0.001, 0.002)},
		bias(10), qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(b.Dequantize("logits", d))
	return build(t, b)
}

func randImages(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 5))
	img := make([]byte, n*784)
	for i := range img {
		if r.IntN(4) == 0 { // sparse strokes like MNIST
			img[i] = byte(r.IntN(256))
		}
	}
	return img
}

func TestMNISTCNNAgainstFloat(t *testing.T) {
	d, interior := checkModel(t, mnistCNN(t, 1), 4, rand.New(rand.NewPCG(1, 1)))
	t.Logf("max diff %.3f LSB, min unclamped share %.2f", d, interior)
	if interior < 0.25 { // every op compared within 1 LSB by checkModel; most outputs must be unclamped for that to mean much
		t.Errorf("an op has only %.0f%% of its outputs inside the clamp bounds", 100*interior)
	}
}

// TestTinyModelAllOps runs a model that uses every op kind end to end, checking each op.
func TestTinyModelAllOps(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	b := qmodel.NewBuilder("tiny")
	x := b.Input("image", qmodel.Uint8, []int{6, 6, 1}, qmodel.PerTensor(1.0/255, 0))
	q := b.Quantize("quant", x, quant.Params{Scale: 1.0 / 255, ZeroPoint: -128})
	c1 := b.Conv2D("conv1", q, qmodel.Weights{Values: randInt8s(r, 18, -127, 127), Shape: []int{2, 3, 3, 1}, Scales: []float32{0.01, 0.02}},
		[]int32{100, -50}, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Act: qmodel.ActReLU}, quant.Params{Scale: 0.02, ZeroPoint: -128})
	p1 := b.MaxPool2D("pool1", c1, qmodel.PoolOptions{KernelH: 2, KernelW: 2})
	dw := b.Conv2D("dw", p1, qmodel.Weights{Values: randInt8s(r, 18, -127, 127), Shape: []int{2, 3, 3, 1}, Scales: []float32{0.03}},
		nil, qmodel.Conv2DOptions{PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 2}, quant.Params{Scale: 0.04, ZeroPoint: 3})
	a := b.Add("add", p1, dw, qmodel.ActReLU6, quant.Params{Scale: 0.03, ZeroPoint: -20})
	p2 := b.AvgPool2D("pool2", a, qmodel.PoolOptions{KernelH: 3, KernelW: 3})
	f := b.Reshape("flat", p2, []int{2})
	fc := b.FullyConnected("fc", f, qmodel.Weights{Values: randInt8s(r, 6, -7, 7), Shape: []int{3, 2}, Scales: []float32{0.1, 0.2, 0.3}, Int4: true},
		[]int32{1, 2, 3}, qmodel.ActNone, quant.Params{Scale: 0.05, ZeroPoint: 0})
	b.Output(b.Dequantize("probs", b.Softmax("softmax", fc)))
	m := build(t, b)
	checkModel(t, m, 5, r)

	// Through the file format: identical results.
	enc, err := qmodel.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := qmodel.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	md1, _ := Load(m)
	md2, _ := Load(m2)
	img := randImages(3, 1)[:36]
	o1, _ := md1.NewSession().RunUint8(img, 1)
	o2, _ := md2.NewSession().RunUint8(img, 1)
	if !reflect.DeepEqual(o1, o2) {
		t.Fatalf("decoded model gives %v, built model %v", o2, o1)
	}
	sum := float32(0)
	for _, p := range o1 {
		sum += p
	}
	if math.Abs(float64(sum)-1) > 0.02 {
		t.Errorf("softmax outputs sum to %v", sum)
	}
}

// TestBatchEqualsSingle checks that a batch gives exactly the per-sample results and that
// RunInt8 agrees with RunUint8.
func TestBatchEqualsSingle(t *testing.T) {
	md, err := Load(mnistCNN(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	const n = 37
	imgs := randImages(4, n)
	s := md.NewSession()
	batch, err := s.RunUint8(imgs, n)
	if err != nil {
		t.Fatal(err)
	}
	batch = append([]float32(nil), batch...)
	one := md.NewSession()
	for i := 0; i < n; i++ {
		o, err := one.RunUint8(imgs[i*784:(i+1)*784], 1)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(o, batch[i*10:(i+1)*10]) {
			t.Fatalf("sample %d: batch %v, single %v", i, batch[i*10:(i+1)*10], o)
		}
	}
	// RunInt8 from the quantized input gives the int8 logits whose dequantization is the output.
	pin, pout, err := md.Int8Params()
	if err != nil {
		t.Fatal(err)
	}
	q := make([]int8, len(imgs))
	for i, u := range imgs {
		q[i] = int8(quant.QuantizeValue(float32(u)/255, pin.Scale, pin.ZeroPoint, -128, 127))
	}
	logits, err := s.RunInt8(q, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range logits {
		if got := quant.DequantizeValue(int32(l), pout.Scale, pout.ZeroPoint); got != batch[i] {
			t.Fatalf("RunInt8 logit %d = %v, RunUint8 %v", i, got, batch[i])
		}
	}
	// Spread: random weights must still give several distinct predictions (the test is not vacuous).
	classes := map[int]bool{}
	for i := 0; i < n; i++ {
		classes[Argmax(batch[i*10:(i+1)*10])] = true
	}
	if len(classes) < 2 {
		t.Errorf("all %d images predict the same class", n)
	}
}

func TestNoAllocsAfterWarmup(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	md, err := Load(mnistCNN(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	s := md.NewSession()
	for _, batch := range []int{1, 16, 3} { // 3 after 16: a smaller batch reuses the buffers
		imgs := randImages(5, batch)
		if _, err := s.RunUint8(imgs, batch); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := s.RunUint8(imgs, batch); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("batch %d (kernels path %s): %.1f allocations per run after warm-up, want 0", batch, kernels.Path(), allocs)
		}
	}
	// The pooled single-sample API reuses its sessions too.
	img := randImages(6, 1)
	md.PredictUint8(img)
	if allocs := testing.AllocsPerRun(20, func() { md.PredictUint8(img) }); allocs != 0 {
		t.Errorf("PredictUint8: %.1f allocations per call after warm-up, want 0", allocs)
	}
}

func TestConcurrentUse(t *testing.T) {
	md, err := Load(mnistCNN(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	imgs := randImages(7, n)
	want := make([]int, n)
	s := md.NewSession()
	for i := range want {
		o, err := s.RunUint8(imgs[i*784:(i+1)*784], 1)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = Argmax(o)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() { // own session
			defer wg.Done()
			s := md.NewSession()
			for i := 0; i < n; i++ {
				o, err := s.RunUint8(imgs[i*784:(i+1)*784], 1)
				if err != nil || Argmax(o) != want[i] {
					errs <- errors.New("session result differs")
					return
				}
			}
		}()
		go func() { // pooled Predict
			defer wg.Done()
			for i := n - 1; i >= 0; i-- {
				c, err := md.PredictUint8(imgs[i*784 : (i+1)*784])
				if err != nil || c != want[i] {
					errs <- errors.New("PredictUint8 result differs")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestInputErrors(t *testing.T) {
	md, err := Load(mnistCNN(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	s := md.NewSession()
	img := randImages(8, 2)
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"short input", func() error { _, err := s.RunUint8(img[:700], 1); return err }, "input has 700 values, want batch 1 x 784"},
		{"batch mismatch", func() error { _, err := s.RunUint8(img, 3); return err }, "want batch 3 x 784"},
		{"zero batch", func() error { _, err := s.RunUint8(nil, 0); return err }, "batch 0 outside"},
		{"float into uint8 model", func() error { _, err := s.Run(make([]float32, 784), 1); return err }, "is uint8: pass raw bytes with RunUint8"},
		{"int8 short", func() error { _, err := s.RunInt8(make([]int8, 3), 1); return err }, "input has 3 values"},
		{"predict short", func() error { _, err := md.PredictUint8(img[:5]); return err }, "input has 5 values"},
		{"intermediate without keep", func() error { s.RunUint8(img[:784], 1); _, _, err := s.Int8Tensor("conv1"); return err }, "KeepIntermediate"},
		{"unknown tensor", func() error { _, _, err := s.Int8Tensor("nope"); return err }, "no tensor named"},
	} {
		if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}

	// A wrong call does not grow the session's buffers (no allocation sized by a bad batch).
	before := s.batch
	if _, err := s.RunUint8(img, MaxBatch); err == nil {
		t.Error("input of 2 images accepted for batch MaxBatch")
	}
	if s.batch != before {
		t.Errorf("a rejected call grew the output buffers from %d to %d samples", before, s.batch)
	}

	// A float-input model rejects NaN and uint8 input.
	b := qmodel.NewBuilder("f")
	x := b.Input("x", qmodel.Float32, []int{2}, nil)
	b.Output(b.Dequantize("y", b.Quantize("q", x, quant.Params{Scale: 0.1})))
	fm, err := Load(build(t, b))
	if err != nil {
		t.Fatal(err)
	}
	fs := fm.NewSession()
	if _, err := fs.Run([]float32{1, float32(math.NaN())}, 1); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN input: %v", err)
	}
	if _, err := fs.RunUint8([]byte{1, 2}, 1); err == nil || !strings.Contains(err.Error(), "use Run") {
		t.Errorf("uint8 into float model: %v", err)
	}
	if out, err := fs.Run([]float32{1, -0.25}, 1); err != nil || out[0] != 1 || math.Abs(float64(out[1])+0.3) > 1e-6 {
		t.Errorf("float model: %v %v", out, err) // -0.25/0.1 = -2.5 rounds away from zero to -3
	}
}

func TestLoadErrors(t *testing.T) {
	m := mnistCNN(t, 6)
	m.Tensors[m.TensorByName("conv1/weights")].Quant.Scales[0] = float32(math.Inf(1))
	if _, err := Load(m); err == nil || !strings.Contains(err.Error(), "finite") {
		t.Errorf("invalid model loaded: %v", err)
	}
	b := qmodel.NewBuilder("two-in")
	x := b.Input("x", qmodel.Int8, []int{2}, qmodel.PerTensor(1, 0))
	y := b.Input("y", qmodel.Int8, []int{2}, qmodel.PerTensor(1, 0))
	b.Output(b.Add("add", x, y, qmodel.ActNone, quant.Params{Scale: 1}))
	if _, err := Load(build(t, b)); err == nil || !strings.Contains(err.Error(), "one of each") {
		t.Errorf("two-input model: %v", err)
	}
	b = qmodel.NewBuilder("identity")
	x = b.Input("x", qmodel.Int8, []int{2}, qmodel.PerTensor(1, 0))
	b.Reshape("r", x, []int{2})
	b.Output(x)
	if _, err := Load(build(t, b)); err == nil || !strings.Contains(err.Error(), "is its input") {
		t.Errorf("output==input model: %v", err)
	}
	// A 64 KB file whose 256x256 kernel slides over a 4096x4096 image: Load must refuse the
	// 1 TB patch buffer rather than let NewSession run out of memory.
	b = qmodel.NewBuilder("huge-im2col")
	x = b.Input("x", qmodel.Int8, []int{4096, 4096, 1}, qmodel.PerTensor(1, 0))
	b.Output(b.Conv2D("conv", x, qmodel.Weights{Values: make([]int8, 1<<16), Shape: []int{1, 256, 256, 1}, Scales: []float32{1}},
		nil, qmodel.Conv2DOptions{}, quant.Params{Scale: 1}))
	if _, err := LoadWith(build(t, b), LoadOptions{MaxWork: -1}); err == nil || !strings.Contains(err.Error(), "patch buffer") {
		t.Errorf("huge im2col model: %v", err)
	}
	if _, err := LoadFile("/nonexistent/model.qm"); err == nil {
		t.Error("missing file loaded")
	}
}

func TestProfile(t *testing.T) {
	md, err := Load(mnistCNN(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	s := md.NewSession()
	if s.Profile() != nil {
		t.Fatal("profile on by default")
	}
	s.EnableProfile(true)
	img := randImages(9, 1)
	for i := 0; i < 3; i++ {
		s.RunUint8(img, 1)
	}
	p := s.Profile()
	if len(p) != md.NumOps() {
		t.Fatalf("%d profile entries for %d ops", len(p), md.NumOps())
	}
	for _, st := range p {
		if st.Calls != 3 {
			t.Errorf("%s: %d calls, want 3", st.Name, st.Calls)
		}
	}
	if p[1].Name != "conv1" || p[1].Total <= 0 {
		t.Errorf("conv1 entry %+v", p[1])
	}
	s.EnableProfile(false)
	if s.Profile() != nil {
		t.Error("profile still on")
	}
}

func TestBufferPlanReusesMemory(t *testing.T) {
	md, err := Load(mnistCNN(t, 8))
	if err != nil {
		t.Fatal(err)
	}
	acts, total := 0, 0
	for i := range md.qm.Tensors {
		if tt := &md.qm.Tensors[i]; !tt.IsConst() && md.plan.slot[i] >= 0 {
			acts++
			total += tt.NumElements()
		}
	}
	planned := 0
	for _, n := range md.plan.size {
		planned += n
	}
	if len(md.plan.size) >= acts || planned >= total {
		t.Errorf("plan uses %d buffers of %d elements for %d tensors of %d elements: no reuse", len(md.plan.size), planned, acts, total)
	}
	t.Logf("%d tensors (%d elements per sample) in %d buffers (%d elements)", acts, total, len(md.plan.size), planned)
}

func TestThreadsMatchSingle(t *testing.T) {
	md, err := Load(mnistCNN(t, 9))
	if err != nil {
		t.Fatal(err)
	}
	single := md.NewSession()
	multi := md.NewSessionWith(SessionOptions{Threads: 3})
	defer multi.Close()
	for _, batch := range []int{1, 15, 16, 17, 50} {
		imgs := randImages(uint64(batch), batch)
		a, err := single.RunUint8(imgs, batch)
		if err != nil {
			t.Fatal(err)
		}
		a = append([]float32(nil), a...)
		b, err := multi.RunUint8(imgs, batch)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("batch %d: threaded result differs", batch)
		}
	}
	if raceEnabled {
		return
	}
	imgs := randImages(1, 64)
	multi.RunUint8(imgs, 64)
	allocs := testing.AllocsPerRun(10, func() { multi.RunUint8(imgs, 64) })
	if allocs != 0 {
		t.Errorf("threaded run: %.1f allocations per run after warm-up, want 0", allocs)
	}
	multi.Close()
	multi.Close() // idempotent
}

// TestGuidedChunks checks Session.take on its own: the chunks of a batch are consecutive, cover
// it exactly once, never exceed the lanes' buffers (chunk), shrink as the batch runs out and are
// at least lastChunk samples except the batch's remainder.
func TestGuidedChunks(t *testing.T) {
	for _, tc := range []struct{ batch, lanes, mb int }{{256, 2, 1000}, {256, 2, 20}, {16, 2, 1000}, {1000, 3, 64}, {17, 2, 5}} {
		s := &Session{lanes: make([]lane, tc.lanes), mb: tc.mb}
		nw := s.split(tc.batch)
		if nw != min(tc.lanes, tc.batch/minChunk) {
			t.Fatalf("%+v: %d lanes", tc, nw)
		}
		var sizes []int
		want := 0
		for {
			lo, hi, ok := s.take()
			if !ok {
				break
			}
			if lo != want || hi <= lo || hi-lo > s.chunk || hi-lo > tc.mb {
				t.Fatalf("%+v: chunk [%d,%d) after %d (chunk limit %d)", tc, lo, hi, want, s.chunk)
			}
			if hi-lo < lastChunk && hi != tc.batch {
				t.Fatalf("%+v: chunk [%d,%d) below %d samples before the end", tc, lo, hi, lastChunk)
			}
			if n := len(sizes); n > 0 && hi-lo > sizes[n-1] {
				t.Fatalf("%+v: chunk sizes grow: %v then %d", tc, sizes, hi-lo)
			}
			sizes = append(sizes, hi-lo)
			want = hi
		}
		if want != tc.batch {
			t.Fatalf("%+v: chunks end at %d", tc, want)
		}
		t.Logf("%+v: %v", tc, sizes)
	}
}

// TestWorkersSpinAndPark runs many batches on multi-threaded sessions with pauses longer than
// spinWait between some of them (the workers and the caller then park) and none between others
// (they spin), batch sizes that use all lanes or only some, and checks every result against a
// single-threaded session.
func TestWorkersSpinAndPark(t *testing.T) {
	md, err := Load(mnistCNN(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	single := md.NewSession()
	r := rand.New(rand.NewPCG(7, 7))
	imgs := randImages(2, 64)
	want := make(map[int][]float32)
	for _, threads := range []int{2, 3} {
		multi := md.NewSessionWith(SessionOptions{Threads: threads})
		for i := 0; i < 120; i++ {
			batch := []int{1, 16, 17, 24, 40, 64}[r.IntN(6)]
			if want[batch] == nil {
				out, err := single.RunUint8(imgs[:batch*784], batch)
				if err != nil {
					t.Fatal(err)
				}
				want[batch] = append([]float32(nil), out...)
			}
			got, err := multi.RunUint8(imgs[:batch*784], batch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want[batch]) {
				t.Fatalf("threads %d, run %d, batch %d: result differs from one thread", threads, i, batch)
			}
			if r.IntN(4) == 0 {
				time.Sleep(2 * spinWait)
			}
		}
		multi.Close()
		if _, err := multi.RunUint8(imgs, 64); err != nil { // usable single-threaded after Close
			t.Fatal(err)
		}
	}
}
