package infer

import (
	"runtime"
	"testing"
)

// TestLMSessionBytes: SessionBytes matches the bytes NewSessionWith allocates (measured with
// runtime.MemStats, within the allocator's rounding and the slice headers), and
// MaxPrefillRowsWithin picks the largest fitting row count.
func TestLMSessionBytes(t *testing.T) {
	c := smallLMConfig(8, 0)
	c.Ctx = 256
	lm, _ := loadRandomLM(t, c, 2)
	for _, rows := range []int{1, 32, 256} {
		opt := LMSessionOptions{PrefillRows: rows}
		want := lm.SessionBytes(opt)
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		s := lm.NewSessionWith(opt)
		runtime.ReadMemStats(&b)
		got := int64(b.TotalAlloc - a.TotalAlloc)
		runtime.KeepAlive(s)
		if got < want || float64(got) > 1.25*float64(want)+4096 {
			t.Errorf("rows %d: SessionBytes %d, NewSessionWith allocated %d", rows, want, got)
		}
	}
	one, all := lm.SessionBytes(LMSessionOptions{PrefillRows: 1}), lm.SessionBytes(LMSessionOptions{PrefillRows: 256})
	if one >= all || lm.PrefillRowsFor(LMSessionOptions{PrefillRows: 1000}) != 256 || lm.PrefillRowsFor(LMSessionOptions{}) != DefaultPrefillRows {
		t.Fatalf("rows 1: %d bytes, rows 256: %d", one, all)
	}
	for _, c := range []struct {
		budget int64
		want   int
	}{{one - 1, 0}, {one, 1}, {all, 256}, {all - 1, 255}, {1 << 40, 256}} {
		if got := lm.MaxPrefillRowsWithin(c.budget, 1000); got != c.want {
			t.Errorf("budget %d: %d rows, want %d", c.budget, got, c.want)
		}
	}
}
