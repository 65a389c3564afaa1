package kernels

import "testing"

// FuzzGEMMPaths derives a small GEMM (sizes, activations, weights, multiplier, zero point)
// from the fuzzer's bytes and checks every path against the naive reference.
func FuzzGEMMPaths(f *testing.F) {
	f.Add([]byte{3, 5, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 200, 100, 50})
	f.Add([]byte{0, 0, 0, 0x80, 0x80, 0x80, 0x7f, 0x7f})
	f.Add([]byte{64, 17, 33, 255, 0, 255, 0, 128, 127, 1, 254})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		m, n, k := 1+int(data[0])%20, 1+int(data[1])%40, 1+int(data[2])%70
		shift := int32(data[3])%20 - 15
		body := data[4:]
		at := func(i int) int8 {
			if len(body) == 0 {
				return 0
			}
			return int8(body[i%len(body)])
		}
		a := make([]int8, m*k)
		for i := range a {
			a[i] = at(i)
		}
		wraw := make([]int8, n*k)
		for i := range wraw {
			v := at(i*7 + 3)
			if v == -128 {
				v = -127
			}
			wraw[i] = v
		}
		w, err := PackInt8(wraw, n, k)
		if err != nil {
			t.Fatal(err)
		}
		rq := &Requant{M0: make([]int32, n), Shift: make([]int32, n), ZeroPoint: int32(at(5)), Min: -128, Max: 127}
		for j := range rq.M0 {
			rq.M0[j] = 1<<30 + int32(at(j))<<20
			rq.Shift[j] = shift
		}
		want := refRequant(refGEMM(a, k, m, wraw, n, k, nil), n, rq)
		for _, p := range allImpls() {
			got := make([]int8, m*n)
			gemmInt8(p, got, n, a, k, m, w, nil, rq)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s m%d n%d k%d: [%d] got %d want %d", p.name, m, n, k, i, got[i], want[i])
				}
			}
		}
	})
}
