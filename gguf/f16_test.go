package gguf

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// halves lists every finite non-negative half as (value, code), sorted by value: the reference
// for a brute-force nearest-value conversion.
func halves() ([]float64, []uint16) {
	var v []float64
	var c []uint16
	for h := uint16(0); h < 0x7c00; h++ {
		// value from the definition, independent of F16ToFloat32
		e, m := int(h>>10), float64(h&0x3ff)
		x := math.Ldexp(m, -24)
		if e > 0 {
			x = math.Ldexp(1024+m, e-25)
		}
		v, c = append(v, x), append(c, h)
	}
	return v, c
}

// nearestHalf is IEEE round-to-nearest-even by search: the closer neighbour, ties to the even
// code, infinity from 65520 (the midpoint between 65504 and the next value 65536) up.
func nearestHalf(vals []float64, codes []uint16, x float32) uint16 {
	a := math.Abs(float64(x))
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	if a >= 65520 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(vals, a)
	if i < len(vals) && vals[i] == a {
		return sign | codes[i]
	}
	lo, hi := i-1, i
	if hi == len(vals) {
		return sign | codes[lo]
	}
	dl, dh := a-vals[lo], vals[hi]-a
	switch {
	case dl < dh:
		return sign | codes[lo]
	case dh < dl:
		return sign | codes[hi]
	case codes[lo]&1 == 0:
		return sign | codes[lo]
	}
	return sign | codes[hi]
}

func TestF16RoundTripEveryHalf(t *testing.T) {
	vals, _ := halves()
	for h := 0; h < 1<<16; h++ {
		x := F16ToFloat32(uint16(h))
		if h&0x7fff > 0x7c00 {
			if x == x {
				t.Fatalf("half %#04x (NaN) decoded to %v", h, x)
			}
			continue
		}
		if h&0x7fff < 0x7c00 && float64(abs32(x)) != vals[h&0x7fff] {
			t.Fatalf("half %#04x decoded to %v, want %v", h, x, vals[h&0x7fff])
		}
		if back := F16FromFloat32(x); back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, x, back)
		}
	}
}

func TestF16FromFloat32Nearest(t *testing.T) {
	vals, codes := halves()
	check := func(x float32) {
		t.Helper()
		if got, want := F16FromFloat32(x), nearestHalf(vals, codes, x); got != want {
			t.Fatalf("F16FromFloat32(%v = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
	// every midpoint between neighbouring halves and the float32 values either side of it
	for i := 0; i+1 < len(vals); i++ {
		mid := float32((vals[i] + vals[i+1]) / 2) // exact: halves have 11 significant bits
		for _, x := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			check(x)
			check(-x)
		}
	}
	for _, x := range []float32{0, 65504, 65519.99, 65520, 1e10, 1e-30, 5.96e-8, 2.98e-8, 2.9802322e-08} {
		check(x)
		check(-x)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		// exponents over the half range and beyond
		x := float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(50)-30))
		if rng.IntN(2) == 0 {
			x = -x
		}
		check(x)
	}
	if F16FromFloat32(float32(math.Inf(-1))) != 0xfc00 || F16FromFloat32(float32(math.NaN()))&0x7fff <= 0x7c00 {
		t.Fatal("infinity or NaN converted wrongly")
	}
}
