//go:build purego || !amd64

package kernels

// amxOn reports false: this build has no AMX kernels.
func amxOn() bool { return false }
