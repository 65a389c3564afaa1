//go:build purego || !amd64

package infer

// attentionExp is attentionExpPortable (no vector form in this build).
func attentionExp(ex, scores []int32, ec expScale) int64 {
	return attentionExpPortable(ex, scores, ec)
}

// ropeVector reports false: no vector form in this build.
func ropeVector(dst, src []int8, st *lmStep, c2, s2 []int32) bool { return false }
