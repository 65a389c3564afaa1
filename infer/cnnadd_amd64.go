//go:build !purego

package infer

import (
	"github.com/qatgo/qatgo/kernels"
	"github.com/qatgo/qatgo/qmodel"
	"github.com/qatgo/qatgo/quant"
)

// addLUTVector runs the Add on the first multiple of 16 values with addLUTAVX512 on the
// avx512vnni path and returns how many it did.
func addLUTVector(dst, a, b []int8, st *step) int {
	n := len(a) &^ 15
	if n == 0 || len(b) < n || len(dst) < n || kernels.Path() != "avx512vnni" {
		return 0
	}
	if addGather {
		m0, rd, rt := mulConsts(st.mOut.Prepare())
		addLUTAVX512(&dst[0], &a[0], &b[0], n, &st.addLUT[0][0], &st.addLUT[1][0], m0, rd, rt,
			int64(st.zOut), int64(st.lo), int64(st.hi))
		return n
	}
	var c [14]int64
	c[0], c[1] = int64(st.zA), int64(st.zB)
	for i, m := range []quant.Multiplier{st.mA, st.mB, st.mOut} {
		m0, rd, rt := mulConsts(m.Prepare())
		c[2+3*i], c[3+3*i], c[4+3*i] = m0, rd, int64(rt)
	}
	z := int64(st.zOut)
	c[11], c[12], c[13] = int64(st.lo)-z, int64(st.hi)-z, z
	addArithAVX512(&dst[0], &a[0], &b[0], n, &c[0])
	return n
}

//go:noescape
func addArithAVX512(dst, a, b *int8, n int, c *int64)

// addArithAVX512 shifts by 20: these fail to compile if qmodel.AddLeftShift changes.
var (
	_ [qmodel.AddLeftShift - 20]struct{}
	_ [20 - qmodel.AddLeftShift]struct{}
)
