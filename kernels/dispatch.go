package kernels

import (
	"fmt"
	"os"
	"sync/atomic"
)

// impl is one implementation of the compute primitives. gemm32 and gemv4 are required; the
// other fields are optional fast paths with a portable fallback in the callers. The portable
// implementation is the reference that the tests compare every other one with.
type impl struct {
	name string
	// rowBlock, if not 0, replaces the driver's rowBlock for GEMMs: rowBlock rounded down to
	// a multiple of the micro-kernel's rows, so that no row block of a task is padded.
	rowBlock int
	// gemm32 computes dst[i*ldd+j] = sum_k a[i*lda+k]*w[j][k] + bias[j] for i < m and all
	// columns j0 <= j < j1 (dst indexed from column j0; j0 a multiple of panelN). bias is
	// never nil here (zeros are substituted by the caller).
	gemm32 func(dst []int32, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, j0, j1 int)
	// gemm8, if not nil, is gemm32 with the epilogue rq fused (dst indexed the same way);
	// otherwise the driver runs gemm32 on tiles and the reference epilogue on the result.
	gemm8 func(dst []int8, ldd int, a []int8, lda, m int, w *PackedInt8, bias []int32, rq *Requant, j0, j1 int)
	// gemv4 computes dst[j] = bias[j] + sum_g scales[j][g]*sum_{k in g} a[k]*w[j][k] for
	// j0 <= j < j1 (dst indexed by j, j0 a multiple of panelN): one activation row, int4 weights.
	gemv4 func(dst []int32, a []int8, w *PackedInt4, bias []int32, j0, j1 int)
	// requant, if not nil, applies the epilogue to rows of n values (a vector version of
	// requantRow); RequantizeInt32 uses it.
	requant func(dst []int8, src []int32, n int, rq *Requant)
	// depthwise, if not nil, computes DepthwiseConv2DInt8 (arguments already checked).
	depthwise func(dst, src []int8, batch int, s ConvShape, inZero int8, w []int8, bias []int32, rq *Requant)
	// conv2DDirect, if not nil, computes Conv2DInt8 for non-pointwise shapes (its own patch
	// layout; scratch as documented by Conv2DScratchLen).
	conv2DDirect func(dst, src []int8, batch int, s ConvShape, inZero int8, w *PackedInt8, bias []int32, rq *Requant, scratch []int8)
	// convPool, if not nil, runs FusedConv in one pass (arguments already checked; with
	// shifted, src holds the input with its sign bit flipped, see FusedConv.RunShifted);
	// without it FusedConv.Run composes Conv2DInt8 and a plain-Go pool.
	convPool func(f *FusedConv, dst, src []int8, batch int, shifted bool, sc *FusedScratch)
	// quantF32 and allFinite, if not nil, are the vector loops of QuantizeFloat32 (finite
	// input) and AllFinite on n values, n a positive multiple of 8.
	quantF32  func(dst *int8, src *float32, n int, scale, zp, lo, hi float32)
	allFinite func(src *float32, n int) bool
	// attnScores and attnValues, if not nil, are the loops of AttentionScores and
	// AttentionValues for n > 0 positions and hd a positive multiple of 16.
	attnScores func(s *int32, q *int16, k *int8, n, hd int)
	attnValues func(o *int64, e *int32, v *int8, n, hd int)
	// The GEMV plan (gemv.go), if not nil: rowCorr returns the per-row correction of the
	// path's unsigned weight encoding (0 without one); gemv8 computes acc[j] = off[j] +
	// sum_k a[k]*w[j][k] for j0 <= j < j1 (j0 a multiple of panelN, K a multiple of 4, acc and off
	// padded to whole tiles); gemv4 does the same for int4 weights with gcorr[g] = 8*sum of
	// group g of a; requantCols applies the epilogue to columns [j0, j1) of one row.
	rowCorr     func(a []int8) int32
	gemv8       func(acc []int32, a []int8, w *PackedInt8, off []int32, j0, j1 int)
	gemv4Plan   func(acc []int32, a []int8, w *PackedInt4, off, gcorr []int32, j0, j1 int)
	requantCols func(dst []int8, acc []int32, rq *Requant, j0, j1 int)
}

// impls lists the paths this build can run on this CPU, portable first, best last.
var impls = []*impl{portableImpl}

var (
	current      atomic.Pointer[impl]
	selectionErr error
)

func init() {
	impls = append(impls, archImpls()...)
	current.Store(impls[len(impls)-1])
	if name := os.Getenv("QATGO_KERNELS"); name != "" {
		if err := SetPath(name); err != nil {
			selectionErr = fmt.Errorf("kernels: QATGO_KERNELS=%q ignored, using %q: %w", name, Path(), err)
		}
	}
}

// Path reports the selected implementation: "portable", "avx2", "avx512vnni", "avxvnni",
// "neon" or "neondot".
func Path() string { return current.Load().name }

// Paths lists the implementations available on this CPU and build, portable first and the
// automatic choice last.
func Paths() []string {
	s := make([]string, len(impls))
	for i, p := range impls {
		s[i] = p.name
	}
	return s
}

// SetPath selects the implementation used by subsequent calls (all paths compute identical
// results; this exists for benchmarks and comparisons). It returns an error, and keeps the
// current path, if name is unknown or not available on this CPU and build.
func SetPath(name string) error {
	p := lookup(name)
	if p == nil {
		return fmt.Errorf("kernels: path %q not available here (available: %v)", name, Paths())
	}
	current.Store(p)
	return nil
}

// SelectionError returns why the QATGO_KERNELS environment variable was not honoured at start,
// or nil if it was unset or honoured.
func SelectionError() error { return selectionErr }

func lookup(name string) *impl {
	for _, p := range impls {
		if p.name == name {
			return p
		}
	}
	return nil
}
