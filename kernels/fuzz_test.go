package kernels

import (
	"math"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

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

// fuzzConv is one convolution decoded from a fuzzer input by decodeFuzzConv.
type fuzzConv struct {
	s      ConvShape
	pool   bool
	batch  int
	inZero int8
	src    []int8 // the batch's activations, at an offset of 0-3 bytes from an allocation
	wraw   []int8 // OutC x K, in [-127, 127]
	bias   []int32
	rq     *Requant
}

// fuzzConvWork bounds batch * OutH * OutW * OutC * K (multiply-adds of the naive reference) so
// that a sample costs milliseconds; the BN CNN's conv2 and conv3 (about 0.9 million each) fit.
const fuzzConvWork = 1 << 21

// decodeFuzzConv derives a small convolution from data: a header of 16 bytes (shape, strides,
// paddings, pool, zero points, clamp, requantization mode) and a body from which activations,
// weights, bias and multipliers are read cyclically. Half of the headers take the "AMX-like"
// form: stride 1, InC a multiple of 4, OutC a multiple of 16 and K = KH*KW*InC >= 64. It
// returns false for inputs that are too short.
func decodeFuzzConv(data []byte) (fuzzConv, bool) {
	const header = 16
	if len(data) < header {
		return fuzzConv{}, false
	}
	h, body := data[:header], data[header:]
	at := func(i int) byte {
		if len(body) == 0 {
			return byte(i * 37)
		}
		return body[i%len(body)] ^ byte(i/len(body)*167) // varied beyond the first period
	}
	var c fuzzConv
	s := &c.s
	amxLike := h[0]&1 == 0
	s.InH, s.InW = 1+int(h[1])%16, 1+int(h[2])%16
	s.InC, s.OutC = 1+int(h[3])%40, 1+int(h[4])%70
	s.KH, s.KW = 1+int(h[5])%5, 1+int(h[5]/5)%5
	stride := func(b byte) int { return []int{1, 1, 2, 3}[b%4] }
	s.StrideH, s.StrideW = stride(h[6]), stride(h[6]>>2)
	pad := func(b byte, k int) int { return min(int(b)%3, k-1) }
	s.PadTop, s.PadBottom = pad(h[7], s.KH), pad(h[7]/3, s.KH)
	s.PadLeft, s.PadRight = pad(h[7]/9, s.KW), pad(h[7]/27, s.KW)
	if amxLike {
		s.StrideH, s.StrideW = 1, 1
		s.InC = 4 * (1 + int(h[3])%10)
		s.OutC = 16 * (1 + int(h[4])%4)
		for s.K() < 64 {
			if s.KH <= s.KW {
				s.KH++
			} else {
				s.KW++
			}
		}
	}
	c.batch = 1 + int(h[0]>>1)%2
	// Shrink the image until the reference's work fits the budget.
	for s.InH*s.InW > 1 && c.batch*max(s.OutH(), 0)*max(s.OutW(), 0)*s.OutC*s.K() > fuzzConvWork {
		if s.InH >= s.InW {
			s.InH = (s.InH + 1) / 2
		} else {
			s.InW = (s.InW + 1) / 2
		}
	}
	if s.Validate() != nil {
		return c, true // NewFusedConv refuses it too
	}
	c.pool = h[0]&4 != 0 && s.OutH() >= 2 && s.OutW() >= 2
	c.inZero = int8(h[8])
	n, k := s.OutC, s.K()
	off := int(h[9]) % 4
	c.src = make([]int8, off+c.batch*s.InH*s.InW*s.InC)[off:]
	switch h[10] % 8 {
	case 0:
		for i := range c.src {
			c.src[i] = -128
		}
	case 1:
		for i := range c.src {
			c.src[i] = 127
		}
	default:
		for i := range c.src {
			c.src[i] = int8(at(i))
		}
	}
	c.wraw = make([]int8, n*k)
	for i := range c.wraw {
		var v int8
		switch h[10] / 8 % 8 {
		case 0:
			v = -127
		case 1:
			v = 127
		default:
			v = int8(at(i*7 + 3))
		}
		c.wraw[i] = max(v, -127)
	}
	if h[11]%4 != 0 {
		c.bias = make([]int32, n)
		for j := range c.bias {
			v := int32(int16(uint16(at(3*j+1)) | uint16(at(3*j+2))<<8))
			c.bias[j] = v << (h[11] / 4 % 5) // up to about +-2^19
		}
	}
	rq := &Requant{M0: make([]int32, n), Shift: make([]int32, n), ZeroPoint: int32(int8(h[12]))}
	sat := h[13]%2 == 0
	if sat {
		rq.Min, rq.Max = -128, 127
	} else {
		lo, hi := int32(int8(h[14])), int32(int8(h[15]))
		rq.Min, rq.Max = min(lo, hi), max(lo, hi)
	}
	for j := range rq.M0 {
		b0, b1, b2, b3 := at(5*j+4), at(5*j+5), at(5*j+6), at(5*j+7)
		switch b0 % 8 {
		case 0: // zero
			rq.M0[j], rq.Shift[j] = 0, int32(b1)%10-5
		case 1: // any valid pair
			rq.M0[j] = int32(uint32(b1)|uint32(b2)<<8|uint32(b3)<<16|uint32(b0)<<24) & math.MaxInt32
			rq.Shift[j] = quant.MinShift + int32(b2)%(quant.MaxShift-quant.MinShift+1)
		default: // a realistic multiplier sIn*sW/sOut ~ 1/(64K), times 2^-3 .. 2^3
			m, err := quant.QuantizeMultiplier(math.Ldexp(1+float64(b1)/256, int(b2)%7-3) / float64(64*k+1))
			if err != nil {
				panic(err)
			}
			rq.M0[j], rq.Shift[j] = m.M0, m.Shift
		}
		if sat {
			// Right shifts of at most 53: the Sat kernels' condition (satEligible).
			rq.Shift[j] = max(rq.Shift[j], -22)
		}
	}
	c.rq = rq
	return c, true
}

// FuzzFusedConvPaths derives a small FusedConv (decodeFuzzConv) from the fuzzer's bytes and
// checks every path (allImpls, plus the AVX-512 VNNI kernels with AMX turned off where AMX is
// on), Run and RunShifted on every selectable path, against the naive convolution, requant and
// pool, and that nothing is written past the output.
func FuzzFusedConvPaths(f *testing.F) {
	// Header: [0] amx-like (even), batch, pool (4); [1] InH; [2] InW; [3] InC; [4] OutC;
	// [5] KH, KW; [6] strides; [7] paddings; [8] input zero point; [9] src offset; [10] fills;
	// [11] bias; [12] output zero point; [13] Sat (even); [14], [15] clamp.
	body := []byte{3, 200, 17, 99, 1, 128, 255, 64, 7, 42, 250, 9, 31, 77, 180, 5, 66, 123}
	seed := func(h ...byte) { f.Add(append(h, body...)) }
	pad1 := byte(1 + 3 + 9 + 27)
	// BN CNN conv2: 14x14, 16->32, 3x3 pad 1, pooled (AMX-like: InC 4*4, OutC 16*2).
	seed(4, 13, 13, 3, 1, 12, 0, pad1, 0x80, 1, 18, 1, 0x80, 0, 0, 0)
	// BN CNN conv3: 7x7, 32->64, 3x3 pad 1, not pooled, ReLU-like clamp (not Sat).
	seed(0, 6, 6, 7, 3, 12, 0, pad1, 0x80, 0, 19, 5, 236, 1, 236, 127)
	// One input channel, 16 outputs, pooled (the C16 kernel), and 8 outputs (C1).
	seed(5, 13, 13, 0, 15, 12, 0, pad1, 0x80, 3, 18, 1, 0, 0, 0, 0)
	seed(5, 11, 9, 0, 7, 12, 0, pad1, 0x10, 2, 18, 2, 5, 0, 0, 0)
	// Strided: 9x7x3 -> 5, 3x2 kernel, strides 2 and 1, paddings 2, 1, 0, 1 (top, bottom,
	// left, right).
	seed(1, 8, 6, 2, 4, 7, 2, 2+3+27, 0, 1, 36, 3, 9, 1, 200, 100)
	// 3x3 stride 3 with 24 channels, 70 outputs, batch 2.
	seed(3, 15, 15, 23, 69, 12, 3|3<<2, 0, 0x7f, 0, 45, 0, 0x7f, 0, 0, 0)
	// Extremes: all -128 activations and weights -127 (5x5, 40->48, batch 2), all 127 (1x1
	// bumped to 2x2, 24->64).
	seed(2, 7, 9, 9, 2, 24, 0, pad1, 0x80, 1, 0, 17, 0x80, 0, 0, 0)
	seed(0, 5, 5, 15, 3, 0, 0, 0, 0x7f, 0, 9, 1, 0x7f, 0, 0, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := decodeFuzzConv(data)
		if !ok {
			return
		}
		s := c.s
		if s.Validate() != nil {
			return
		}
		w, err := PackInt8(c.wraw, s.OutC, s.K())
		if err != nil {
			t.Fatal(err)
		}
		fc, err := NewFusedConv(s, c.pool, c.inZero, w, c.bias, c.rq)
		if err != nil {
			return
		}
		want := refRequant(refConv(c.src, c.batch, s, c.inZero, c.wraw, c.bias, false), s.OutC, c.rq)
		if c.pool {
			want = refPool(want, c.batch, s.OutH(), s.OutW(), s.OutC)
		}
		if n := c.batch * fc.OutH() * fc.OutW() * s.OutC; n != len(want) {
			t.Fatalf("%+v pool %v: output size %d, want %d", s, c.pool, n, len(want))
		}
		shifted := make([]int8, len(c.src))
		for i, v := range c.src {
			shifted[i] = v ^ -128
		}
		buf := make([]int8, len(want)+8)
		check := func(name string, run func(dst []int8)) {
			t.Helper()
			for i := range buf {
				buf[i] = 99
			}
			run(buf[:len(want)])
			for i := range want {
				if buf[i] != want[i] {
					ch := i % s.OutC
					t.Fatalf("%s: %+v pool %v batch %d inZero %d AMX plan %v Sat %v: index %d (pixel %d, channel %d: M0 %d Shift %d, zero point %d, clamp [%d, %d]) got %d want %d",
						name, s, c.pool, c.batch, c.inZero, fc.amx != nil, fc.satEligible(), i, i/s.OutC, ch, c.rq.M0[ch], c.rq.Shift[ch], c.rq.ZeroPoint, c.rq.Min, c.rq.Max, buf[i], want[i])
				}
			}
			for i := len(want); i < len(buf); i++ {
				if buf[i] != 99 {
					t.Fatalf("%s: %+v pool %v: wrote past the output (index %d of %d)", name, s, c.pool, i, len(want))
				}
			}
		}
		var sc FusedScratch
		runImpl := func(p *impl, suffix string) {
			if p.convPool == nil {
				check(p.name+suffix, func(dst []int8) { fc.runUnfused(dst, c.src, c.batch, &sc) })
				return
			}
			check(p.name+suffix, func(dst []int8) { p.convPool(fc, dst, c.src, c.batch, false, &sc) })
			check(p.name+suffix+" shifted", func(dst []int8) { p.convPool(fc, dst, shifted, c.batch, true, &sc) })
		}
		for _, p := range allImpls() {
			runImpl(p, "")
			if p.name == "avx512vnni" && fc.amx != nil {
				withAMXOff(func() { runImpl(p, " (AMX off)") })
			}
		}
		// The exported entry points on every selectable path.
		u := make([]byte, len(shifted))
		for i, v := range shifted {
			u[i] = byte(v)
		}
		defer SetPath(Path())
		for _, path := range Paths() {
			if err := SetPath(path); err != nil {
				t.Fatal(err)
			}
			check("Run on "+path, func(dst []int8) { fc.Run(dst, c.src, c.batch, &sc) })
			check("RunShifted on "+path, func(dst []int8) { fc.RunShifted(dst, u, c.batch, &sc) })
		}
	})
}
