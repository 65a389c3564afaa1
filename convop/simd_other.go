//go:build purego || !amd64

package convop

// addTo32 sets dst[i] += src[i] for i < len(src).
func addTo32(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// relu32 writes max(x, 0) to y.
func relu32(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

// reluGrad32 writes dy where x >= 0 and 0 elsewhere.
func reluGrad32(x, dy, dx []float32) { reluGradGo(x, dy, dx) }
