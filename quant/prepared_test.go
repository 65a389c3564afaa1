package quant

import (
	"math"
	"testing"
)

// TestPreparedMultiplierRoundTrip: Multiplier() returns the prepared pair (shift clamped), and
// preparing it again gives the same constants and the same Apply on extreme accumulators.
func TestPreparedMultiplierRoundTrip(t *testing.T) {
	for _, m := range []Multiplier{
		{}, {M0: 1 << 30, Shift: 0}, {M0: math.MaxInt32, Shift: MaxShift}, {M0: 1<<30 + 12345, Shift: MinShift},
		{M0: 1 << 30, Shift: MinShift - 5}, {M0: 1 << 30, Shift: MaxShift + 3}, {M0: 1500000000, Shift: -7},
	} {
		p := m.Prepare()
		back := p.Multiplier()
		want := Multiplier{M0: m.M0, Shift: min(max(m.Shift, MinShift), MaxShift)}
		if back != want {
			t.Fatalf("%+v: Multiplier() = %+v, want %+v", m, back, want)
		}
		if back.Prepare() != p {
			t.Fatalf("%+v: prepared again differs", m)
		}
		for _, acc := range []int32{math.MinInt32, -1, 0, 1, 77777, math.MaxInt32} {
			if got, want := back.Prepare().Apply(acc), p.Apply(acc); got != want {
				t.Fatalf("%+v: Apply(%d) = %d, want %d", m, acc, got, want)
			}
		}
	}
}
