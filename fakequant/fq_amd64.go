//go:build amd64 && !purego

package fakequant

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 float32 forward kernels (fq_amd64.s).
var useAVX2 = cpu.X86.HasAVX2

// fqRunAVX2 fake-quantizes x[i] into y[i], aux[i] for i < n rounded down to a multiple of 8, with
// k = {vlo, vhi, lo*s, hi*s} broadcast to 8 lanes, exactly like fqRun's stride-1 loop. It stops
// before the first 8-element block holding a non-finite input and returns how many elements it did.
//
//go:noescape
func fqRunAVX2(x, y, aux *float32, n int, s float32, k *[4][8]float32) int

// fqRunMinMaxAVX2 is fqRunAVX2 that also folds the inputs it processed into the per-lane running
// min mm[0] and max mm[1] (lane replaced only when x < lane, resp. x > lane).
//
//go:noescape
func fqRunMinMaxAVX2(x, y, aux *float32, n int, s float32, k *[4][8]float32, mm *[2][8]float32) int

// fqRowsAVX2 fake-quantizes n elements viewed as rows of c (c a multiple of 8; n a multiple of c,
// or n = c for one row's prefix), column j with s[j], lo[j], hi[j], exactly like fqRows. It stops
// before the first 8-element block holding a non-finite input and returns how many it did.
//
//go:noescape
func fqRowsAVX2(x, y, aux, s, lo, hi *float32, n, c int) int

// auxBwdAVX2 is auxBwdRun's stride-1 loop over n rounded down to a multiple of 8: it writes gx and
// adds per-lane float64 partial sums into sums[0] (g*a inside), sums[1] (g clipped low) and
// sums[2] (g clipped high). It returns the elements done.
//
//go:noescape
func auxBwdAVX2(aux, gy, gx *float32, n int, plain bool, sums *[3][8]float64) int

// minMaxAVX2 folds x[:n] (n rounded down to a multiple of 8) into the per-lane running min mm[0]
// and max mm[1]. It stops before the first 8-element block holding a non-finite value and returns
// the elements done.
//
//go:noescape
func minMaxAVX2(x *float32, n int, mm *[2][8]float32) int
