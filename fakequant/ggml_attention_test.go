package fakequant

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// refAttention is causal multi-head attention in float64 with RoPE on adjacent pairs (angle
// t*base^(-2i/hd)) and scale 1/sqrt(hd), written independently of the kernel.
func refAttention(q, k, v []float32, B, T, H, hd int, base float64) []float64 {
	D := H * hd
	rope := func(x []float32, t int) []float64 {
		y := make([]float64, hd)
		for i := 0; i < hd/2; i++ {
			a := float64(t) * math.Pow(base, -2*float64(i)/float64(hd))
			x0, x1 := float64(x[2*i]), float64(x[2*i+1])
			y[2*i], y[2*i+1] = x0*math.Cos(a)-x1*math.Sin(a), x0*math.Sin(a)+x1*math.Cos(a)
		}
		return y
	}
	out := make([]float64, B*T*D)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			row := func(x []float32, t int) []float32 { return x[(b*T+t)*D+h*hd : (b*T+t)*D+(h+1)*hd] }
			for t := 0; t < T; t++ {
				qt := rope(row(q, t), t)
				s := make([]float64, t+1)
				mx := math.Inf(-1)
				for j := range s {
					kj := rope(row(k, j), j)
					for d := range kj {
						s[j] += qt[d] * kj[d]
					}
					s[j] /= math.Sqrt(float64(hd))
					mx = max(mx, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					z += s[j]
				}
				for j := range s {
					for d, x := range row(v, j) {
						out[(b*T+t)*D+h*hd+d] += s[j] / z * float64(x)
					}
				}
			}
		}
	}
	return out
}

// GGMLAttention: values within float32 (F32 cache) or half precision (F16 cache) rounding of
// float64 attention, the gradient of its float reference, and clear errors for shapes it cannot
// model.
func TestGGMLAttention(t *testing.T) {
	const B, T, H, hd = 2, 37, 3, 16 // T > 16 and not a multiple of 16: partial softmax blocks
	rng := rand.New(rand.NewPCG(7, 8))
	vals := func() []float32 {
		x := make([]float32, B*T*H*hd)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	qv, kv, vv, cv := vals(), vals(), vals(), vals()
	want := refAttention(qv, kv, vv, B, T, H, hd, 10000)
	for _, f16 := range []bool{false, true} {
		g := G.NewGraph()
		mat := func(name string, v []float32) *G.Node {
			return G.NewMatrix(g, tensor.Float32, G.WithShape(B*T, H*hd), G.WithName(name), G.WithValue(tensor.New(tensor.WithShape(B*T, H*hd), tensor.WithBacking(v))))
		}
		q, k, v, c := mat("q", qv), mat("k", kv), mat("v", vv), mat("c", cv)
		// any differentiable reference of the right shape: the gradient must be its own
		ref := G.Must(G.Add(q, G.Must(G.HadamardProd(k, v))))
		att, err := GGMLAttention(ref, q, k, v, GGMLAttentionConfig{Batch: B, Seq: T, Heads: H, RoPEBase: 10000, KVF16: f16})
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(G.Must(G.Sum(G.Must(G.HadamardProd(att, c)))), q, k, v)
		if err != nil {
			t.Fatal(err)
		}
		var gq, gk, gv G.Value
		G.Read(grads[0], &gq)
		G.Read(grads[1], &gk)
		G.Read(grads[2], &gv)
		vm := G.NewTapeMachine(g)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		tol := 2e-5
		if f16 {
			tol = 2e-2
		}
		var worst float64
		for i, x := range att.Value().Data().([]float32) {
			d := math.Abs(float64(x) - want[i])
			worst = max(worst, d)
			if d > tol {
				t.Fatalf("f16 %v: output %d = %v, float64 attention %v", f16, i, x, want[i])
			}
		}
		t.Logf("f16 %v: max |GGMLAttention - float64 attention| = %.3g", f16, worst)
		for i := range cv {
			if gq.Data().([]float32)[i] != cv[i] || gk.Data().([]float32)[i] != cv[i]*vv[i] || gv.Data().([]float32)[i] != cv[i]*kv[i] {
				t.Fatalf("f16 %v: gradient %d is not the reference's", f16, i)
			}
		}
		vm.Close()
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 24), G.WithName("x"))
	for _, c := range []GGMLAttentionConfig{
		{Batch: 1, Seq: 4, Heads: 3, RoPEBase: 10000},              // hd = 8
		{Batch: 2, Seq: 4, Heads: 3, RoPEBase: 10000},              // rows
		{Batch: 1, Seq: 4, Heads: 3, RoPEBase: 0},                  // no RoPE
		{Batch: 1, Seq: 4, Heads: 3, RoPEBase: 10000, KVF16: true}, // F16 needs hd % 16 == 0
	} {
		_, err := GGMLAttention(x, x, x, x, c)
		if (err == nil) != (c == GGMLAttentionConfig{Batch: 1, Seq: 4, Heads: 3, RoPEBase: 10000}) {
			t.Errorf("%+v: error %v", c, err)
		}
	}
}

// ggmlOps runs .ci/llamacpp/ggmlops.py: llama.cpp's own ggml_vec_dot_f32 and
// ggml_vec_soft_max_f32 from the CPU backend node-llama-cpp loads on AVX-512 machines (zen4), or
// skips where that library, python3 or the CPU features are missing.
func ggmlOps(t *testing.T, req any, res any) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("llama.cpp's AVX-512 CPU library runs on linux/amd64")
	}
	info, _ := os.ReadFile("/proc/cpuinfo")
	for _, f := range []string{"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16"} {
		if !bytes.Contains(info, []byte(" "+f)) {
			t.Skipf("this CPU lacks %s: llama.cpp runs another build of its CPU backend here", f)
		}
	}
	dir := filepath.Join("..", ".ci", "llamacpp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libggml-cpu-zen4.so")); err != nil {
		t.Skip("node-llama-cpp's CPU libraries are not installed in .ci/llamacpp (.ci/run installs them)")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (.ci/run installs it)")
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command(py, filepath.Join(dir, "ggmlops.py"), "zen4")
	cmd.Stdin = bytes.NewReader(in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && strings.Contains(stderr.String(), "No module named") {
		t.Skipf("python3 lacks a module ggmlops.py needs: %s", stderr.String())
	}
	if err != nil {
		t.Fatalf("ggmlops.py: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatal(err)
	}
}

// ggmlVecDotF32 and ggmlSoftMaxExp give the bits of llama.cpp's ggml_vec_dot_f32 and
// ggml_vec_soft_max_f32 (AVX-512 build) on random rows of every length class: the 64-wide
// accumulators, the runs of 16 and 8 of the leftover loop and its fma tail; softmax rows with
// masked (-inf) tails.
func TestGGMLVecOpsMatchLlamaCpp(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	bits := func(x []float32) []uint32 {
		b := make([]uint32, len(x))
		for i, v := range x {
			b[i] = math.Float32bits(v)
		}
		return b
	}
	row := func(n int, sd float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(sd * rng.NormFloat64())
		}
		return x
	}
	var dots [][2][]float32
	for _, n := range []int{1, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 48, 63, 64, 65, 80, 100, 128, 135, 192, 256, 300} {
		for range 20 {
			dots = append(dots, [2][]float32{row(n, 1), row(n, 3)})
		}
	}
	var soft [][]float32
	for _, n := range []int{16, 32, 48, 64, 256} {
		for range 20 {
			w := row(n, 4)
			for i := 1 + rng.IntN(n); i < n; i++ {
				w[i] = float32(math.Inf(-1))
			}
			soft = append(soft, w)
		}
	}
	type request struct {
		Dot     [][2][]uint32 `json:"dot"`
		Softmax [][2]any      `json:"softmax"`
	}
	var req request
	maxes := make([]float32, len(soft))
	for _, d := range dots {
		req.Dot = append(req.Dot, [2][]uint32{bits(d[0]), bits(d[1])})
	}
	for i, w := range soft {
		maxes[i] = float32(math.Inf(-1))
		for _, x := range w {
			maxes[i] = max(maxes[i], x)
		}
		req.Softmax = append(req.Softmax, [2]any{bits(w), math.Float32bits(maxes[i])})
	}
	var res struct {
		Dot     []uint32 `json:"dot"`
		Softmax [][2]json.RawMessage
	}
	ggmlOps(t, req, &res)
	if len(res.Dot) != len(dots) || len(res.Softmax) != len(soft) {
		t.Fatalf("%d dots and %d softmax rows back for %d and %d", len(res.Dot), len(res.Softmax), len(dots), len(soft))
	}
	for i, d := range dots {
		if got := ggmlVecDotF32(d[0], d[1]); math.Float32bits(got) != res.Dot[i] {
			t.Errorf("n=%d: ggmlVecDotF32 = %v, llama.cpp %v", len(d[0]), got, math.Float32frombits(res.Dot[i]))
		}
	}
	for i, w := range soft {
		var ys []uint32
		var sum float64
		if json.Unmarshal(res.Softmax[i][0], &ys) != nil || json.Unmarshal(res.Softmax[i][1], &sum) != nil {
			t.Fatal("bad softmax response")
		}
		y := append([]float32(nil), w...)
		got := ggmlSoftMaxExp(y, maxes[i])
		if got != sum {
			t.Errorf("n=%d: softmax sum %v, llama.cpp %v", len(w), got, sum)
		}
		for j := range y {
			if math.Float32bits(y[j]) != ys[j] {
				t.Fatalf("n=%d: exp %d = %v, llama.cpp %v", len(w), j, y[j], math.Float32frombits(ys[j]))
			}
		}
	}
	t.Logf("%d dot products and %d softmax rows equal llama.cpp's bits", len(dots), len(soft))
}
