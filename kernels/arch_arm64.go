//go:build !purego

package kernels

const (
	haveSIMD = true
	panelXor = 0
)

func archImpls() []*impl { return nil }
