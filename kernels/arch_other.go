//go:build purego || !(amd64 || arm64)

package kernels

const (
	haveSIMD = false
	panelXor = 0
)

func archImpls() []*impl { return nil }
