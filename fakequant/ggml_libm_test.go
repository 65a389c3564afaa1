package fakequant

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// libmScript evaluates the C library's sincosf and powf (through ctypes) on float32 inputs read
// from the file argv[1]: pairs (a, b), writing sincosf(a) and powf(a, b) as float32 triples.
const libmScript = `
import ctypes, struct, sys
libm = ctypes.CDLL("libm.so.6")
libm.sincosf.argtypes = [ctypes.c_float, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
libm.powf.restype = ctypes.c_float
libm.powf.argtypes = [ctypes.c_float, ctypes.c_float]
data = open(sys.argv[1], "rb").read()
vals = struct.unpack("<%df" % (len(data) // 4), data)
s, c = ctypes.c_float(), ctypes.c_float()
out = []
for i in range(0, len(vals), 2):
    libm.sincosf(vals[i], ctypes.byref(s), ctypes.byref(c))
    out.append(struct.pack("<fff", s.value, c.value, libm.powf(vals[i], vals[i+1])))
sys.stdout.buffer.write(b"".join(out))
`

// glibcReference returns the C library's sincosf(a) and powf(a, b) for the pairs in, or skips
// the test where it cannot call glibc (no python3, not linux/amd64, another libm).
func glibcReference(t *testing.T, in [][2]float32) (sin, cos, pow []float32) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the reference is glibc's libm on linux/amd64, which llama.cpp's x86 CPU backend calls")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: it calls glibc's sincosf and powf through ctypes (.ci/run installs it)")
	}
	var buf bytes.Buffer
	for _, p := range in {
		binary.Write(&buf, binary.LittleEndian, p)
	}
	path := filepath.Join(t.TempDir(), "in.f32")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", libmScript, path).Output()
	if err != nil {
		t.Skipf("calling libm through python3 failed: %v", err)
	}
	if len(out) != 12*len(in) {
		t.Fatalf("libm script wrote %d bytes for %d inputs", len(out), len(in))
	}
	sin, cos, pow = make([]float32, len(in)), make([]float32, len(in)), make([]float32, len(in))
	for i := range in {
		sin[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[12*i:]))
		cos[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[12*i+4:]))
		pow[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[12*i+8:]))
	}
	return sin, cos, pow
}

// glibcSincosf and glibcPowf return glibc's bits on every RoPE angle llama.cpp computes for
// contexts up to 4096 with common head sizes and bases (the angles of ggml's float32 recurrence,
// about 2% of which glibc rounds differently from the correctly rounded sine or cosine), on the
// edges of each argument-reduction branch and on random arguments up to 1e6.
func TestGlibcSincosfMatchesLibm(t *testing.T) {
	var in [][2]float32
	var powAt []int // the (base, -2/hd) pairs
	for _, base := range []float32{10000, 500000, 1e6} {
		for _, hd := range []int{16, 64, 128} {
			e := -2 / float32(hd)
			scale := glibcPowf(base, e)
			for p := 0; p < 4096; p += 11 {
				theta := float32(p)
				for i := 0; i < hd/2; i++ {
					in = append(in, [2]float32{theta, e})
					theta *= scale
				}
			}
			powAt = append(powAt, len(in))
			in = append(in, [2]float32{base, e})
		}
	}
	for _, base := range []float32{10, 100, 1000, 5000, 20000, 40000, 50000, 75000, 100000, 200000, 250000, 1e7, 1e8} {
		for _, hd := range []int{8, 16, 32, 48, 64, 80, 96, 112, 128, 256} {
			powAt = append(powAt, len(in))
			in = append(in, [2]float32{base, -2 / float32(hd)})
		}
	}
	for _, x := range []float32{0, 0x1p-12, 0x1p-13, 0.785, 0.7853982, 0.7854, 119.99, 120, 120.01, -1, -200.5, 1e6} {
		in = append(in, [2]float32{x, 0.5})
	}
	seed := uint32(1)
	for range 5000 {
		seed = seed*1664525 + 1013904223
		in = append(in, [2]float32{float32(seed>>8) / (1 << 24) * 1e6 * float32(1-2*int(seed&1)), 1})
	}
	sin, cos, pow := glibcReference(t, in)
	bad := 0
	for i, p := range in {
		s, c := glibcSincosf(p[0])
		if math.Float32bits(s) != math.Float32bits(sin[i]) || math.Float32bits(c) != math.Float32bits(cos[i]) {
			if bad++; bad <= 5 {
				t.Errorf("sincosf(%v) = %v, %v; glibc %v, %v", p[0], s, c, sin[i], cos[i])
			}
		}
	}
	for _, i := range powAt {
		if got := glibcPowf(in[i][0], in[i][1]); got != pow[i] {
			t.Errorf("powf(%v, %v) = %v; glibc %v", in[i][0], in[i][1], got, pow[i])
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d arguments differ from glibc", bad, len(in))
	}
	t.Logf("%d arguments, all equal to glibc's bits", len(in))
}
