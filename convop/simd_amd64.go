//go:build !purego

package convop

import "golang.org/x/sys/cpu"

//go:noescape
func addToAVX2(dst, src *float32, n int)

//go:noescape
func reluAVX2(x, y *float32, n int)

//go:noescape
func reluGradAVX2(x, dy, dx *float32, n int)

var useAVX2 = cpu.X86.HasAVX2

// addTo32 sets dst[i] += src[i] for i < len(src).
func addTo32(dst, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if useAVX2 && len(src) >= 8 {
		n = len(src) &^ 7
		addToAVX2(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] += src[i]
	}
}

// relu32 writes max(x, 0) to y.
func relu32(x, y []float32) {
	y = y[:len(x)]
	n := 0
	if useAVX2 && len(x) >= 8 {
		n = len(x) &^ 7
		reluAVX2(&x[0], &y[0], n)
	}
	for i := n; i < len(x); i++ {
		y[i] = max(x[i], 0)
	}
}

// reluGrad32 writes dy where x >= 0 and 0 elsewhere.
func reluGrad32(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	n := 0
	if useAVX2 && len(x) >= 8 {
		n = len(x) &^ 7
		reluGradAVX2(&x[0], &dy[0], &dx[0], n)
	}
	reluGradGo(x[n:], dy[n:], dx[n:])
}
