//go:build purego || !amd64

package kernels

func amxOn() bool { return false }
