//go:build !purego && !linux

package kernels

// amxEnable reports false: outside Linux the kernels do not ask the OS for the AMX tile state.
func amxEnable() bool { return false }
