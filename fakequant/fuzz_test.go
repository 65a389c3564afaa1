package fakequant

import (
	"math"
	"testing"

	"github.com/qatgo/qatgo/quant"
)

// FuzzKernelMatchesQuant checks that the element kernel fqRun (clamp of the rounded quotient, then
// times s) equals quant.FakeQuantizeValue bit for bit, in float32 and float64, for any finite input,
// scale >= quant.MinScale, zero point and bit width; and that its aux code classifies the element
// as the contract's clamp does.
func FuzzKernelMatchesQuant(f *testing.F) {
	f.Add(float64(0.25), float64(0.5), int32(0), uint8(4), uint8(0))
	f.Add(float64(-0.25), float64(0.5), int32(0), uint8(4), uint8(1))
	f.Add(float64(-0.1), float64(1), int32(3), uint8(8), uint8(1))
	f.Add(float64(1e30), float64(1e-7), int32(-128), uint8(8), uint8(1))
	f.Add(float64(3.5), float64(1), int32(0), uint8(2), uint8(2))
	f.Add(float64(-1e-40), float64(1e30), int32(255), uint8(8), uint8(2))
	f.Fuzz(func(t *testing.T, x, scale float64, zp int32, bits, scheme uint8) {
		b := 2 + int(bits)%7
		var r quant.Range
		switch scheme % 3 {
		case 0:
			r, zp = quant.NarrowSigned(b), 0
		case 1:
			r = quant.Signed(b)
		default:
			r = quant.Unsigned(b)
		}
		zp = quant.Clamp(zp, r.Min, r.Max)
		if math.IsNaN(x) || math.IsInf(x, 0) || !(scale >= quant.MinScale) || math.IsInf(scale, 0) || scale > math.MaxFloat32 {
			t.Skip()
		}
		s32 := float32(scale)
		if !(s32 >= quant.MinScale) || math.IsInf(float64(s32), 0) {
			t.Skip()
		}
		check := func(got, want float64, v, rv float64, aux float64) {
			if math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("x=%v s=%v z=%d r=%v: kernel %v, quant %v", x, scale, zp, r, got, want)
			}
			u := rv + float64(zp)
			switch {
			case u < float64(r.Min) && aux != auxLow, u > float64(r.Max) && aux != auxHigh:
				t.Fatalf("x=%v: clip code %v for u=%v", x, aux, u)
			case u >= float64(r.Min) && u <= float64(r.Max) && aux != rv-v:
				t.Fatalf("x=%v: residual %v want %v", x, aux, rv-v)
			}
		}
		// float64
		{
			xs, ys, as := []float64{x}, make([]float64, 1), make([]float64, 1)
			if bad := fqRun(xs, ys, as, 0, 1, 1, float64(s32), zp, r.Min, r.Max); bad >= 0 {
				t.Fatalf("finite x=%v reported bad", x)
			}
			v := x / float64(s32)
			check(ys[0], quant.FakeQuantizeValue(x, float64(s32), zp, r.Min, r.Max), v, quant.Round(v), as[0])
		}
		// float32
		if x32 := float32(x); !math.IsInf(float64(x32), 0) {
			xs, ys, as := []float32{x32}, make([]float32, 1), make([]float32, 1)
			if bad := fqRun(xs, ys, as, 0, 1, 1, s32, zp, r.Min, r.Max); bad >= 0 {
				t.Fatalf("finite x=%v reported bad", x32)
			}
			want := quant.FakeQuantizeValue(x32, s32, zp, r.Min, r.Max)
			if math.Float32bits(ys[0]) != math.Float32bits(want) {
				t.Fatalf("float32 x=%v s=%v z=%d %v: kernel %v, quant %v", x32, s32, zp, r, ys[0], want)
			}
		}
	})
}
