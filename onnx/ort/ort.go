// Package ort runs ONNX models in onnxruntime through node and the npm package onnxruntime-node,
// for tests and benchmarks that compare qatgo with onnxruntime. It is not part of the deploy path.
//
// Install the runtime once, outside the Go module tree:
//
//	mkdir -p ~/.cache/qatgo-ort && cd ~/.cache/qatgo-ort &&
//	npm install --ignore-scripts onnxruntime-node@1.30.0
//
// [Find] looks for node on PATH and for onnxruntime-node under $QATGO_ORT_DIR (default
// ~/.cache/qatgo-ort); .ci/run installs both.
package ort

import (
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed run.js
var runScript []byte

// EnvDir names the environment variable that overrides the folder holding node_modules/onnxruntime-node.
const EnvDir = "QATGO_ORT_DIR"

// ErrNotInstalled is wrapped by Find's error when node or onnxruntime-node is missing.
var ErrNotInstalled = errors.New("ort: onnxruntime-node not installed")

// Runtime is a located node binary plus onnxruntime-node.
type Runtime struct {
	Node       string // path of the node binary
	ModulesDir string // folder holding onnxruntime-node
}

// DefaultDir returns $QATGO_ORT_DIR, or ~/.cache/qatgo-ort.
func DefaultDir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "qatgo-ort")
	}
	return filepath.Join(os.TempDir(), "qatgo-ort")
}

// Find locates node and onnxruntime-node (see the package documentation).
func Find() (*Runtime, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node is not on PATH", ErrNotInstalled)
	}
	mods := filepath.Join(DefaultDir(), "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "onnxruntime-node", "package.json")); err != nil {
		return nil, fmt.Errorf("%w under %s (cd %s && npm install --ignore-scripts onnxruntime-node@1.30.0, or set %s)",
			ErrNotInstalled, DefaultDir(), DefaultDir(), EnvDir)
	}
	return &Runtime{Node: node, ModulesDir: mods}, nil
}

// Input is one input tensor: Data is []float32, []int8 or []uint8; Dims includes the batch axis.
type Input struct {
	Data any
	Dims []int
}

// Result is the model's first output.
type Result struct {
	Dims     []int
	Type     string    // onnxruntime's element type: float32, int8, uint8
	Float32  []float32 // set when Type is float32
	Int8     []int8    // set when Type is int8
	Uint8    []uint8   // set when Type is uint8
	UsPerRun float64   // mean microseconds per session.run over the timed runs (0 without timing)
}

// Options control Run.
type Options struct {
	Threads int // intra-op threads (default 1)
	Runs    int // timed runs after one warm-up (0: run once, no timing)
	// Optimized, when set, is where onnxruntime writes the model after its graph optimizations
	// (to see which kernels it chose, e.g. QLinearConv for a QDQ Conv).
	Optimized string
}

// Run runs the ONNX model file once on in (its first input) and returns its first output.
func (r *Runtime) Run(model string, in Input, o Options) (*Result, error) {
	dir, err := os.MkdirTemp("", "qatgo-ort-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var raw []byte
	var typ string
	switch d := in.Data.(type) {
	case []float32:
		typ = "float32"
		raw = make([]byte, 4*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
	case []int8:
		typ = "int8"
		raw = make([]byte, len(d))
		for i, v := range d {
			raw[i] = byte(v)
		}
	case []uint8:
		typ = "uint8"
		raw = d
	default:
		return nil, fmt.Errorf("ort: input type %T", in.Data)
	}
	n := 1
	for _, d := range in.Dims {
		n *= d
	}
	if size := map[string]int{"float32": 4, "int8": 1, "uint8": 1}[typ]; n*size != len(raw) {
		return nil, fmt.Errorf("ort: %d input elements do not fill dims %v", len(raw)/size, in.Dims)
	}
	script := filepath.Join(dir, "run.js")
	inPath, outPath, reqPath := filepath.Join(dir, "in.bin"), filepath.Join(dir, "out.bin"), filepath.Join(dir, "req.json")
	abs, err := filepath.Abs(model)
	if err != nil {
		return nil, err
	}
	req, _ := json.Marshal(map[string]any{"model": abs, "input": inPath, "output": outPath, "type": typ,
		"dims": in.Dims, "threads": max(1, o.Threads), "runs": o.Runs, "optimized": o.Optimized})
	for _, f := range []struct {
		p string
		b []byte
	}{{script, runScript}, {inPath, raw}, {reqPath, req}} {
		if err := os.WriteFile(f.p, f.b, 0o600); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(r.Node, script, reqPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+r.ModulesDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ort: onnxruntime on %s: %v: %s", model, err, strings.TrimSpace(stderr.String()))
	}
	var res Result
	if err := json.Unmarshal(stdout, &res); err != nil {
		return nil, fmt.Errorf("ort: reading the runner's answer %q: %w", stdout, err)
	}
	b, err := os.ReadFile(outPath)
	if err != nil {
		return nil, err
	}
	switch res.Type {
	case "float32":
		res.Float32 = make([]float32, len(b)/4)
		for i := range res.Float32 {
			res.Float32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "int8":
		res.Int8 = make([]int8, len(b))
		for i, v := range b {
			res.Int8[i] = int8(v)
		}
	case "uint8":
		res.Uint8 = b
	default:
		return nil, fmt.Errorf("ort: output type %q", res.Type)
	}
	return &res, nil
}
