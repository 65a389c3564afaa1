//go:build !amd64 || purego

package fakequant

// useAVX2 is false off amd64 and with the purego tag: the portable Go loops run.
const useAVX2 = false

func fqRunAVX2(x, y, aux *float32, n int, s float32, k *[4][8]float32) int { return 0 }

func fqRunMinMaxAVX2(x, y, aux *float32, n int, s float32, k *[4][8]float32, mm *[2][8]float32) int {
	return 0
}

func fqRowsAVX2(x, y, aux, s, lo, hi *float32, n, c int) int { return 0 }

func auxBwdAVX2(aux, gy, gx *float32, n int, plain bool, sums *[3][8]float64) int { return 0 }

func minMaxAVX2(x *float32, n int, mm *[2][8]float32) int { return 0 }
