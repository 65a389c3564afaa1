//go:build !purego

package kernels

const haveSIMD = true

func archImpls() []*impl { return nil }
