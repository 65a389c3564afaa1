//go:build purego || !amd64

package kernels

// withAMXOff reports false: this build has no AMX kernels (see amx_test.go).
func withAMXOff(fn func()) bool { return false }
