//go:build purego || !amd64

package infer

import "github.com/qatgo/qatgo/quant"

// attentionExp is attentionExpPortable (no vector form in this build).
func attentionExp(ex, scores []int32, ec expScale) int64 {
	return attentionExpPortable(ex, scores, ec)
}

// ropeVector reports false: no vector form in this build.
func ropeVector(dst, src []int8, st *lmStep, c2, s2 []int32) bool { return false }

func addVector(dst, a, b []int8, st *lmStep) int { return 0 }

func swigluVector(dst, gate, up []int8, st *lmStep) int { return 0 }

func divVector(dst []int8, o []int64, sum int64, m quant.PreparedMultiplier, z int32) bool {
	return false
}
