//go:build purego || !(amd64 || arm64)

package kernels

const haveSIMD = false

func archImpls() []*impl { return nil }
