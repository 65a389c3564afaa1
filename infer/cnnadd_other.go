//go:build purego || !amd64

package infer

// addLUTVector has no vector form on this path.
func addLUTVector(dst, a, b []int8, st *step) int { return 0 }
