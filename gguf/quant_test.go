package gguf

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

func block(vals ...float32) []float32 {
	x := make([]float32, QK)
	copy(x, vals)
	return x
}

// With amax = 127 the scale is exactly 1, so the codes are the rounded values themselves.
func TestQuantizeQ8_0BlockHandComputed(t *testing.T) {
	x := block(127, -127, 0.5, -0.5, 1.5, 2.5, -2.5, 3.49, -3.51, 0, 100.2)
	var q [QK]int8
	d := QuantizeQ8_0Block(x, &q)
	want := []int8{127, -127, 1, -1, 2, 3, -3, 3, -4, 0, 100} // ties away from zero (roundf)
	if d != 0x3c00 {
		t.Errorf("scale %#04x, want 0x3c00 (1.0)", d)
	}
	for i, w := range want {
		if q[i] != w {
			t.Errorf("q[%d] = %d, want %d (x = %v)", i, q[i], w, x[i])
		}
	}
	// The CPU activation quantizer rounds ties to even.
	da := QuantizeActQ8_0Block(x, &q)
	wantAct := []int8{127, -127, 0, 0, 2, 2, -2, 3, -4, 0, 100}
	if da != 0x3c00 {
		t.Errorf("activation scale %#04x, want 0x3c00", da)
	}
	for i, w := range wantAct {
		if q[i] != w {
			t.Errorf("activation q[%d] = %d, want %d (x = %v)", i, q[i], w, x[i])
		}
	}
	// An all-zero block has scale 0 and codes 0.
	if d := QuantizeQ8_0Block(block(), &q); d != 0 || q != [QK]int8{} {
		t.Errorf("zero block: scale %#04x, codes %v", d, q)
	}
}

func TestQuantizeQ4_0BlockHandComputed(t *testing.T) {
	// max = -8 (the first value of largest magnitude) gives d = 1: n = min(15, trunc(x + 8.5)).
	x := block(-8, 7, 7.6, 0, -0.5, -0.51, 0.49, 0.5, 8)
	var n [QK]uint8
	d := QuantizeQ4_0Block(x, &n)
	if d != 0x3c00 {
		t.Errorf("scale %#04x, want 0x3c00 (1.0)", d)
	}
	want := []uint8{0, 15, 15, 8, 8, 7, 8, 9, 15}
	for i, w := range want {
		if n[i] != w {
			t.Errorf("n[%d] = %d, want %d (x = %v)", i, n[i], w, x[i])
		}
	}
	// max = +8 first gives d = -1: x = 8 -> code 0 (value -1*(0-8) = 8), x = -7 -> 15.
	x = block(8, -7, -8)
	if d := QuantizeQ4_0Block(x, &n); d != 0xbc00 || n[0] != 0 || n[1] != 15 || n[2] != 15 {
		t.Errorf("max +8: scale %#04x, codes %v", d, n[:3])
	}
	// The packed layout: low nibble of byte j is element j, high nibble element j+16.
	x = make([]float32, QK)
	x[0] = -8
	for j := 1; j < QK; j++ {
		x[j] = float32(j%16) - 8 // code j%16 with d = 1
	}
	b, err := Quantize(Q4_0, x, QK)
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < QK/2; j++ {
		lo, hi := b[2+j]&15, b[2+j]>>4
		if int(lo) != j%16 || int(hi) != (j+16)%16 {
			t.Fatalf("byte %d = %#02x: nibbles %d, %d, want %d, %d", j, b[2+j], lo, hi, j%16, (j+16)%16)
		}
	}
}

// Codes agree with a float64 evaluation of the same formulas except where the product lies
// within float32 rounding of a rounding boundary; dequantized values are within the bound of
// the format.
func TestQuantizeRandomBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for it := 0; it < 3000; it++ {
		x := make([]float32, QK)
		scale := math.Ldexp(1, rng.IntN(30)-15)
		for j := range x {
			x[j] = float32(rng.NormFloat64() * scale)
		}
		var amax, mx float64
		for _, v := range x {
			if math.Abs(float64(v)) > amax {
				amax, mx = math.Abs(float64(v)), float64(v)
			}
		}
		var q [QK]int8
		var n [QK]uint8
		var qa [QK]int8
		d8 := F16ToFloat32(QuantizeQ8_0Block(x, &q))
		d4 := F16ToFloat32(QuantizeQ4_0Block(x, &n))
		da := F16ToFloat32(QuantizeActQ8_0Block(x, &qa))
		tiny := math.Ldexp(1, -25) // half of the smallest subnormal half
		if d8 != da || math.Abs(float64(d8)-amax/127) > amax/127/2048+tiny || math.Abs(float64(d4)-mx/-8) > amax/8/2048+tiny {
			t.Fatalf("scales %v, %v, %v for amax %v, max %v", d8, da, d4, amax, mx)
		}
		for j, v := range x {
			r8 := float64(v) / (amax / 127)
			r4 := float64(v)/(mx/-8) + 8.5
			if frac := math.Abs(r8 - math.Trunc(r8)); math.Abs(frac-0.5) > 1e-4 {
				if int8(math.Round(r8)) != q[j] || int8(math.RoundToEven(r8)) != qa[j] {
					t.Fatalf("x %v: codes %d, %d, want %v", v, q[j], qa[j], math.Round(r8))
				}
			}
			if math.Abs(r4-math.Round(r4)) > 1e-4 {
				if w := uint8(min(15, math.Trunc(r4))); w != n[j] {
					t.Fatalf("x %v: Q4_0 code %d, want %d", v, n[j], w)
				}
			}
			if e := math.Abs(float64(d8)*float64(q[j]) - float64(v)); e > 0.57*float64(abs32(d8))+128*tiny {
				t.Fatalf("Q8_0 error %v for x %v, d %v", e, v, d8)
			}
			if e := math.Abs(float64(d4)*float64(int(n[j])-8) - float64(v)); e > 1.01*float64(abs32(d4))+9*tiny {
				t.Fatalf("Q4_0 error %v for x %v, d %v", e, v, d4)
			}
		}
	}
}

func TestQuantizeDequantizeTensor(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 3*64)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, typ := range []TensorType{F32, F16, Q8_0, Q4_0} {
		b, err := Quantize(typ, x, 64)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := ByteSize(typ, []uint64{64, 3}); uint64(len(b)) != n {
			t.Fatalf("%v: %d bytes, want %d", typ, len(b), n)
		}
		y, err := Dequantize(typ, b, len(x))
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			var want float32
			switch typ {
			case F32:
				want = x[i]
			case F16:
				want = RoundF16(x[i])
			case Q8_0:
				blk := b[i/QK*Q8_0BlockBytes:]
				want = F16ToFloat32(binary.LittleEndian.Uint16(blk)) * float32(int8(blk[2+i%QK]))
			case Q4_0:
				blk := b[i/QK*Q4_0BlockBytes:]
				nib := blk[2+i%16]
				if i%QK >= 16 {
					nib >>= 4
				}
				want = F16ToFloat32(binary.LittleEndian.Uint16(blk)) * float32(int(nib&15)-8)
			}
			if y[i] != want {
				t.Fatalf("%v element %d: %v, want %v", typ, i, y[i], want)
			}
		}
	}
	if _, err := Quantize(Q8_0, x[:48], 48); err == nil {
		t.Error("Q8_0 rows of 48 accepted")
	}
	if _, err := Quantize(Q4_K, x, 64); err == nil {
		t.Error("Q4_K accepted")
	}
	if _, err := Dequantize(Q8_0, make([]byte, 33), 32); err == nil {
		t.Error("short Q8_0 data accepted")
	}
}
