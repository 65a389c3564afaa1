//go:build !purego

package kernels

import "unsafe"

// Assembly in gemvtail_amd64.s.

//go:noescape
func vnniGemvTail(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32)

// The avx512vnni path's GEMV kernel (simdKernels.gemv, read on every call by gemv8Plan).
func init() { avx512Kernels.gemv = vnniGemvILP }

// vnniGemvILP is the avx512vnni GEMV kernel with the tiles past the last whole group of 8 run
// by vnniGemvTail (more independent VPDPBUSD chains; same sums).
func vnniGemvILP(a *int8, kg int, w *int8, ts int, nt int, off *int32, c *int32) {
	n8 := nt &^ 7
	if n8 > 0 {
		vnniGemv(a, kg, w, ts, n8, off, c)
	}
	if nt > n8 {
		vnniGemvTail(a, kg, (*int8)(unsafe.Add(unsafe.Pointer(w), n8*ts)), ts, nt-n8,
			(*int32)(unsafe.Add(unsafe.Pointer(off), 4*n8*panelN)), (*int32)(unsafe.Add(unsafe.Pointer(c), 4*n8*panelN)))
	}
}
