package infer

import (
	"math"

	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// The CNN runtime's Add with the LM runtime's vector kernel (addLUTAVX512 on the avx512vnni
// path): each input level's rescaled value MultiplyByQuantizedMultiplier((q-z)<<AddLeftShift)
// comes from a 256-entry table per input, the two are summed with int32 wrap-around and the sum
// requantized once, in 16 lanes. This is add's arithmetic step by step, so the result equals
// addTab's; elsewhere, and for the last len%16 values, addLookup reads addTab.

// addInputTables returns the rescaled input tables of an Add step, or nil when the vector
// kernels cannot reproduce add exactly: the output range minus the zero point must fit int32 and
// be an int8 range (quant.Requantize's clamp), the input zero points int8 levels, no rescaled
// input may saturate (addArithAVX512 computes them in int64 without saturating) and no sum of two
// may leave int32 (it adds in int64 where add wraps around).
func addInputTables(st *step) *[2][256]int32 {
	lo, hi := int64(st.lo)-int64(st.zOut), int64(st.hi)-int64(st.zOut)
	if st.lo > st.hi || st.lo < -128 || st.hi > 127 || lo < math.MinInt32 || hi > math.MaxInt32 ||
		st.zA < -128 || st.zA > 127 || st.zB < -128 || st.zB > 127 {
		return nil
	}
	t := new([2][256]int32)
	var peak [2]int64
	for i, z := range []int32{st.zA, st.zB} {
		m := []quant.Multiplier{st.mA, st.mB}[i].Prepare()
		m0, rd, rt := mulConsts(m)
		for q := -128; q < 128; q++ {
			x := (int32(q) - z) << qmodel.AddLeftShift
			t[i][q+128] = m.Apply(x)
			wide := (int64(x)*m0 + rd) >> rt
			if wide != int64(t[i][q+128]) {
				return nil
			}
			peak[i] = max(peak[i], wide, -wide)
		}
	}
	if peak[0]+peak[1] > math.MaxInt32 {
		return nil
	}
	return t
}

// addRun is the runtime's Add: the vector kernel where the path has one, addLookup otherwise.
func addRun(dst, a, b []int8, st *step) {
	n := 0
	if st.addLUT != nil {
		n = addLUTVector(dst, a, b, st)
	}
	if n < len(a) {
		addLookup(dst[n:], a[n:], b[n:len(a)], st)
	}
}

// mulConsts returns the constants of p's vector form: M0, the rounding term and the right
// shift, with p.Apply(x) = sat32((x*M0 + round) >> right).
func mulConsts(p quant.PreparedMultiplier) (m0, round int64, right uint64) {
	m := p.Multiplier()
	right = uint64(31 - m.Shift)
	return int64(m.M0), int64(1) << (right - 1), right
}

// addGather selects the LM runtime's gather form (addLUTAVX512) instead of addArithAVX512 on the
// avx512vnni path (for BenchmarkAddCNN).
var addGather = false
