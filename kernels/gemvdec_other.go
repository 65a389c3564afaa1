//go:build purego || !amd64

package kernels

// gemvDec is the decode form of a GEMV (gemvdec_amd64.go); this build has none.
type gemvDec struct {
	p  *impl
	ep []int64
}

func newGEMVDec(*GEMV) *gemvDec { return nil }

func (d *gemvDec) run(g *GEMV, dst8 []int8, dst32 []int32, a []int8, scratch []int32) {
	panic("kernels: no GEMV decode form in this build")
}
