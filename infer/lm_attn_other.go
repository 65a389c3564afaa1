//go:build purego || !amd64

package infer

// attentionExp is attentionExpPortable (no vector form in this build).
func attentionExp(ex, scores []int32, ec expScale) int64 {
	return attentionExpPortable(ex, scores, ec)
}
