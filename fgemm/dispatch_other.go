//go:build purego || !(amd64 || arm64)

package fgemm

// available lists every kernel pair this build can run, for tests.
func available() ([]microKernel[float32], []microKernel[float64]) {
	return []microKernel[float32]{portable32}, []microKernel[float64]{portable64}
}
