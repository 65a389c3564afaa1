//go:build purego || !amd64

package infer

// maxPool2x2Vector has no vector form on this path.
func maxPool2x2Vector(dst, src []int8, batch int, st *step) bool { return false }
